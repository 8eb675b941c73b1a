"""Many Raft groups in one process, sharing one transport and one connection per peer."""

import asyncio
from collections.abc import Callable
from pathlib import Path

from cairn.raft.driver import GroupSettings, RaftGroup
from cairn.raft.statemachine import StateMachine
from cairn.raft.transport import RaftTransport
from cairn.raft.types import Message
from cairn.wire import Router, RpcPool


class RaftHost:
    def __init__(
        self,
        node_id: int,
        members: dict[int, str],
        directory: Path,
        pool: RpcPool,
        settings: GroupSettings | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._on_fatal = on_fatal
        self.members = members
        self.directory = directory
        self.settings = settings or GroupSettings()
        self.groups: dict[int, RaftGroup] = {}
        peers = {node: address for node, address in members.items() if node != node_id}
        self.transport = RaftTransport(pool, peers, self._deliver)

    def _deliver(self, message: Message) -> bool:
        group = self.groups.get(message.group_id)
        if group is None or message.to != self.node_id:
            return False
        group.step(message)
        return True

    def add_group(
        self,
        group_id: int,
        voters: set[int],
        machine: StateMachine | None = None,
        initial_state: bytes | None = None,
    ) -> RaftGroup:
        """Host a replica of `group_id` with `machine` (default: the key-value machine);
        `initial_state` as `RaftGroup` takes it."""
        if group_id in self.groups:
            raise ValueError(f"group {group_id} already hosted")
        group = RaftGroup(
            group_id,
            self.node_id,
            voters,
            self.directory / f"group-{group_id}",
            self.transport.send,
            self.settings,
            self._on_fatal,
            machine,
            initial_state,
        )
        self.groups[group_id] = group
        return group

    def register(self, router: Router) -> None:
        self.transport.register(router)

    def start(self) -> None:
        self.transport.start()
        for group in self.groups.values():
            group.start()

    async def stop(self) -> None:
        await asyncio.gather(*(group.stop() for group in self.groups.values()))
        await self.transport.stop()

    def leader_address(self, group_id: int) -> str:
        group = self.groups.get(group_id)
        if group is None or not group.leader_id:
            return ""
        return self.members.get(group.leader_id, "")
