"""A throwaway RPC server process for tests: Ping, plus Stall, which never answers.

Prints its port on stdout once listening, then serves until killed.
"""

import asyncio
import sys

import msgspec

from cairn.runtime.event_loop import run
from cairn.wire import Router, RpcServer, derive_auth_key, ping_handler
from cairn.wire.messages import Ping
from cairn.wire.server import CallContext, Reply


class Stall(msgspec.Struct, frozen=True, tag=True):
    pass


async def stall(_request: Stall, _payload: memoryview, _ctx: CallContext) -> Reply:
    await asyncio.Event().wait()  # until the process is killed
    raise AssertionError("unreachable")


async def main() -> None:
    router = Router()
    router.register(Ping, ping_handler("stall-server"))
    router.register(Stall, stall)
    server = RpcServer(router, node_id="stall-server", auth_key=derive_auth_key(sys.argv[1]))
    port = await server.start("127.0.0.1", 0)
    print(port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(main())
