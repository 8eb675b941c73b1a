"""Hosts in Linux network namespaces, for tests that cut and heal the network.

Theory of operation
-------------------
Each host is a network namespace with one veth interface; the other end of every veth
sits on a bridge in the root namespace, which also has an address, so the test process
reaches every host directly and the hosts reach each other through the bridge. Addresses
come from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking and testing
networks: they belong to no real host, and traffic to them never leaves this machine.

- `cut(a, b)` adds blackhole routes in both namespaces (one way with `one_way=True`):
  packets vanish silently, so callers see timeouts, as in a real partition.
- `isolate(a)` takes the host's link down: it can reach nothing and nothing reaches it.
- `heal()` removes every cut and brings every link back up.

Everything needs root and iproute2; `unavailable_reason()` says why not when it can't.
Interface names are tagged with a short random id so parallel labs do not collide, and
`destroy()` (also run by the context manager) removes every namespace and the bridge.
"""

import os
import shutil
import subprocess
import uuid
from types import TracebackType

ADDRESS_PREFIX = "198.18"


class NetnsError(RuntimeError):
    """An `ip` command failed."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def unavailable_reason() -> str | None:
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"cairnprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", probe)
    return None


class NetnsLab:
    def __init__(self, hosts: list[str], subnet: int | None = None) -> None:
        if not 1 <= len(hosts) <= 200:
            raise ValueError("a lab has 1 to 200 hosts")
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = subnet if subnet is not None else int(self.tag, 16) % 250 + 1
        self.hosts = list(hosts)
        self.bridge = f"cb{self.tag}"
        self._created: list[str] = []
        self._bridge_made = False
        self._cuts: set[tuple[str, str]] = set()

    def namespace(self, host: str) -> str:
        return f"cairn-{self.tag}-{self.hosts.index(host)}"

    def address(self, host: str) -> str:
        return f"{ADDRESS_PREFIX}.{self.subnet}.{self.hosts.index(host) + 1}"

    @property
    def gateway_address(self) -> str:
        return f"{ADDRESS_PREFIX}.{self.subnet}.254"

    def _veth(self, host: str) -> tuple[str, str]:
        index = self.hosts.index(host)
        return f"cv{self.tag}{index}", f"cp{self.tag}{index}"

    def exec_prefix(self, host: str) -> list[str]:
        """Prefix an argv with this to run it inside `host`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def create(self) -> None:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._bridge_made = True
            _ip("addr", "add", f"{self.gateway_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for host in self.hosts:
                namespace = self.namespace(host)
                outside, inside = self._veth(host)
                _ip("netns", "add", namespace)
                self._created.append(namespace)
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                _ip("link", "set", inside, "netns", namespace)
                _ip("link", "set", outside, "master", self.bridge, "up")
                _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", inside)
                _ip("-n", namespace, "link", "set", inside, "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def cut(self, a: str, b: str, one_way: bool = False) -> None:
        """Drop packets from a to b (and b to a unless one_way)."""
        pairs = [(a, b)] if one_way else [(a, b), (b, a)]
        for source, target in pairs:
            if (source, target) not in self._cuts:
                _ip(
                    "-n",
                    self.namespace(source),
                    "route",
                    "add",
                    "blackhole",
                    f"{self.address(target)}/32",
                )
                self._cuts.add((source, target))

    def isolate(self, host: str) -> None:
        _ip("link", "set", self._veth(host)[0], "down")

    def heal(self) -> None:
        for source, target in sorted(self._cuts):
            _ip(
                "-n",
                self.namespace(source),
                "route",
                "del",
                "blackhole",
                f"{self.address(target)}/32",
            )
        self._cuts.clear()
        for host in self.hosts:
            _ip("link", "set", self._veth(host)[0], "up")

    def destroy(self) -> None:
        """Remove the namespaces (their veths go with them) and the bridge; idempotent."""
        for namespace in self._created:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self._created.clear()
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
            self._bridge_made = False

    def __enter__(self) -> "NetnsLab":
        self.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
