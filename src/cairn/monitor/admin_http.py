"""The admin HTTP port every server process opens: `/metrics` and `/health`.

`/health` answers 200 with a JSON body when every registered check passes and 503 with
the failing checks otherwise, so load balancers and the local cluster harness can wait on
it. Roles add checks (e.g. "raft: has leader") and extra routes as they grow.
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from cairn.monitor.metrics import render_metrics

# A check returns None when healthy, or a short reason when not.
HealthCheck = Callable[[], Awaitable[str | None]]


@dataclass
class AdminServer:
    """Serves the admin endpoints; `start` binds, `stop` closes."""

    host: str
    port: int
    identity: dict[str, str] = field(default_factory=dict)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    app: web.Application = field(default_factory=web.Application)
    _runner: web.AppRunner | None = None
    bound_port: int = 0

    def __post_init__(self) -> None:
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/health", self._health)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=render_metrics(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def _health(self, _request: web.Request) -> web.Response:
        failures: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                reason = await check()
            except Exception as exc:  # a broken check is a failing check, not a 500
                reason = f"check raised {type(exc).__name__}: {exc}"
            if reason is not None:
                failures[name] = reason
        body = {"status": "ok" if not failures else "unhealthy", **self.identity}
        if failures:
            body["failures"] = json.dumps(failures)
        return web.json_response(body, status=200 if not failures else 503)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
