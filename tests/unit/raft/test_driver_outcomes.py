"""How the driver settles proposals whose index an installed snapshot covers: the entry may
be inside the snapshot, so the proposer learns "outcome unknown", not "not applied"."""

import asyncio
from pathlib import Path

import pytest

from cairn.raft.driver import RaftGroup
from cairn.raft.types import Message, ProposalOutcomeUnknown


def ignore(_messages: tuple[Message, ...]) -> None:
    pass


async def test_proposals_covered_by_a_snapshot_have_an_unknown_outcome(tmp_path: Path) -> None:
    group = RaftGroup(7, 1, {1}, tmp_path / "group", ignore)
    loop = asyncio.get_running_loop()
    covered: asyncio.Future[object] = loop.create_future()
    beyond: asyncio.Future[object] = loop.create_future()
    group._proposals = {5: (1, covered), 9: (1, beyond)}
    group._settle_covered_proposals(5)
    with pytest.raises(ProposalOutcomeUnknown, match="index 5"):
        covered.result()
    assert not beyond.done() and list(group._proposals) == [9]
    group.storage.close()
