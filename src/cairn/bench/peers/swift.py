"""An all-in-one OpenStack Swift 2.30 with its s3api middleware on loopback, for
`cairn bench s3 --peer swift`.

Started from Debian's packages (`swift swift-proxy swift-object swift-container
swift-account memcached`; installed with apt-get when missing and we are root), the way
../shared/PEERS.md set it up: one object, container and account server and one proxy,
each with `workers = auto` (one per core), plus one memcached, all on 127.0.0.1 ports
chosen free. The three "devices" are plain directories (`mount_check = false`), one zone
each, in rings built with `swift-ring-builder` (part power 10, 3 replicas, min_part_hours
1), so every object has a replica on each device and every PUT writes three copies (each
fsynced by the object server). The proxy pipeline is SAIO's with `s3api` just before
`tempauth`; the S3 access key is `test:tester`, the secret the tempauth key.

Everything lives in a temporary directory (`swift_dir`, devices, logs) except
`/etc/swift/swift.conf`: Swift 2.30 reads the hash path prefix/suffix and the storage
policies only from that fixed path. If it is absent it is written (random prefix and
suffix, one default policy) and left in place, and `notes` says so; if present (Debian's
package ships one) it is used as it is.

Every server calls setsid and, on SIGTERM, signals its own process group, so `stop`
sends SIGTERM to each server and then SIGKILL to each group that outlives a deadline.
The servers are spawned to die with this process (PDEATHSIG); their forked workers are
not, so a `kill -9` of the benchmark can leave Swift workers behind.
"""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from cairn.localcluster.children import spawn
from cairn.localcluster.harness import free_ports

SWIFT_CONF = Path("/etc/swift/swift.conf")
PACKAGES = ("swift", "swift-proxy", "swift-object", "swift-container", "swift-account", "memcached")
SERVERS = ("account", "container", "object", "proxy")
RING_KINDS = ("account", "container", "object")
BINARIES = (*(f"swift-{s}-server" for s in SERVERS), "swift-ring-builder", "memcached")
DEVICES = ("d1", "d2", "d3")
PART_POWER = 10
REPLICAS = 3
MIN_PART_HOURS = 1
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"
"""s3api's default `location`: the region a SigV4 scope must name."""
MEMCACHED_MB = 64
APT_TIMEOUT_S = 900.0
RING_TIMEOUT_S = 60.0
START_WAIT_S = 60.0
STOP_WAIT_S = 10.0
POLL_S = 0.1
ENV = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}

Progress = Callable[[str], None]


class SwiftUnavailable(Exception):
    """Swift cannot be installed, configured or started here (the reason is the text)."""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name, path=ENV["PATH"]) is None]


def ensure_installed(progress: Progress) -> None:
    """Install Debian's Swift and memcached packages if a binary is missing."""
    if not missing_binaries():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SwiftUnavailable(
            f"missing {', '.join(missing_binaries())}; installing needs apt-get as root"
        )
    command = ["apt-get", "install", "-y", *PACKAGES]
    progress(f"installing Swift: {' '.join(command)}")
    env = {**ENV, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):  # a second time after `apt-get update`, for stale lists
        done = subprocess.run(
            command, env=env, check=False, capture_output=True, timeout=APT_TIMEOUT_S
        )
        if done.returncode == 0 and not missing_binaries():
            return
        if attempt == 0:
            subprocess.run(
                ["apt-get", "update"],
                env=env,
                check=False,
                capture_output=True,
                timeout=APT_TIMEOUT_S,
            )
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
    raise SwiftUnavailable(f"apt-get install failed: {' '.join(tail) or done.returncode}")


def ensure_swift_conf() -> str:
    """Make sure `/etc/swift/swift.conf` exists; say what was done."""
    if SWIFT_CONF.exists():
        return f"used the existing {SWIFT_CONF} (hash prefix/suffix and policies)"
    text = (
        "[swift-hash]\n"
        f"swift_hash_path_suffix = {secrets.token_hex(16)}\n"
        f"swift_hash_path_prefix = {secrets.token_hex(16)}\n\n"
        "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
    )
    try:
        SWIFT_CONF.parent.mkdir(parents=True, exist_ok=True)
        with open(SWIFT_CONF, "x") as file:  # never overwrite one that appeared meanwhile
            file.write(text)
    except FileExistsError:
        return f"used the existing {SWIFT_CONF} (hash prefix/suffix and policies)"
    except OSError as exc:
        raise SwiftUnavailable(f"cannot write {SWIFT_CONF}: {exc}") from exc
    return f"wrote {SWIFT_CONF} (it was absent; Swift reads it only there) and left it"


def _server_conf(kind: str, port: int, devices: Path, swift_dir: Path, user: str) -> str:
    return f"""[DEFAULT]
devices = {devices}
mount_check = false
bind_ip = 127.0.0.1
bind_port = {port}
workers = auto
user = {user}
swift_dir = {swift_dir}
log_name = {kind}-server

[pipeline:main]
pipeline = healthcheck {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[filter:healthcheck]
use = egg:swift#healthcheck
"""


_PROXY_FILTERS = (
    "catch_errors",
    "gatekeeper",
    "healthcheck",
    "proxy-logging",
    "listing_formats",
    "copy",
    "slo",
    "dlo",
    "versioned_writes",
)


def _proxy_conf(port: int, memcached_port: int, swift_dir: Path, user: str) -> str:
    filters = "".join(
        f"\n[filter:{name}]\nuse = egg:swift#{name.replace('-', '_')}\n" for name in _PROXY_FILTERS
    )
    return f"""[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = auto
user = {user}
swift_dir = {swift_dir}
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {SECRET_KEY} .admin

[filter:s3api]
use = egg:swift#s3api
location = {REGION}

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}
{filters}"""  # noqa: E501 - one pipeline line, as Swift reads it


class SwiftAllInOne:
    """Swift + s3api + tempauth + memcached under `base_dir` (see the module doc)."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.swift_dir = base_dir / "etc"
        self.devices = base_dir / "srv"
        self.logs = base_dir / "log"
        ports = free_ports(len(SERVERS) + 1)
        self.ports = dict(zip(SERVERS, ports, strict=False))
        self.memcached_port = ports[-1]
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.notes: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    @property
    def access_key(self) -> str:
        return ACCESS_KEY

    @property
    def secret_key(self) -> str:
        return SECRET_KEY

    @property
    def region(self) -> str:
        return REGION

    def pids(self) -> dict[str, int]:
        """Process id of each server's parent (its workers are in its process group)."""
        return {name: process.pid for name, process in self.processes.items()}

    def describe(self) -> dict[str, object]:
        return {
            "version": _swift_version(),
            "layout": f"1 proxy + 1 object/container/account server (workers = auto, "
            f"{os.cpu_count()} cores), memcached; 3 directory devices in 3 zones",
            "rings": {
                "part_power": PART_POWER,
                "replicas": REPLICAS,
                "min_part_hours": MIN_PART_HOURS,
            },
            "pipeline": "... cache listing_formats s3api tempauth copy slo dlo ... proxy-server",
            "notes": self.notes,
        }

    # -- setup -----------------------------------------------------------------------

    def _write_configs(self) -> None:
        for path in (self.swift_dir, self.logs, *(self.devices / d for d in DEVICES)):
            path.mkdir(parents=True, exist_ok=True)
        for kind in RING_KINDS:
            conf = _server_conf(kind, self.ports[kind], self.devices, self.swift_dir, self.user)
            (self.swift_dir / f"{kind}-server.conf").write_text(conf)
        proxy = _proxy_conf(self.ports["proxy"], self.memcached_port, self.swift_dir, self.user)
        (self.swift_dir / "proxy-server.conf").write_text(proxy)

    def _ring(self, *args: str) -> None:
        done = subprocess.run(
            ["swift-ring-builder", *args],
            cwd=self.swift_dir,
            env=ENV,
            check=False,
            capture_output=True,
            timeout=RING_TIMEOUT_S,
        )
        if done.returncode not in (0, 1):  # 1 is a warning (e.g. balance), 2 an error
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise SwiftUnavailable(f"swift-ring-builder {' '.join(args)}: {output[-300:]}")

    def _build_rings(self) -> None:
        for kind in RING_KINDS:
            builder = f"{kind}.builder"
            self._ring(builder, "create", str(PART_POWER), str(REPLICAS), str(MIN_PART_HOURS))
            for zone, device in enumerate(DEVICES, start=1):
                self._ring(
                    builder, "add", f"r1z{zone}-127.0.0.1:{self.ports[kind]}/{device}", "100"
                )
            self._ring(builder, "rebalance")
            if not (self.swift_dir / f"{kind}.ring.gz").exists():
                raise SwiftUnavailable(f"swift-ring-builder wrote no {kind}.ring.gz")

    # -- lifecycle -------------------------------------------------------------------

    def start(self, progress: Progress = lambda _: None) -> None:
        ensure_installed(progress)
        self.notes.append(ensure_swift_conf())
        progress(self.notes[-1])
        self._write_configs()
        self._build_rings()
        try:
            memcached = [
                "memcached",
                "-l",
                "127.0.0.1",
                "-p",
                str(self.memcached_port),
                "-U",
                "0",
                "-m",
                str(MEMCACHED_MB),
                "-u",
                self.user,
            ]
            self.processes["memcached"] = spawn(memcached, ENV, str(self.logs / "memcached.log"))
            for server in SERVERS:
                conf = str(self.swift_dir / f"{server}-server.conf")
                self.processes[server] = spawn(
                    [f"swift-{server}-server", conf], ENV, str(self.logs / f"{server}.log")
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _healthy(self, port: int) -> bool:
        try:
            url = f"http://127.0.0.1:{port}/healthcheck"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_WAIT_S
        for server in SERVERS:
            while not self._healthy(self.ports[server]):
                process = self.processes[server]
                if process.poll() is not None:
                    raise SwiftUnavailable(f"swift-{server}-server exited: {self.tail(server)}")
                if time.monotonic() > deadline:
                    raise SwiftUnavailable(
                        f"swift-{server}-server not healthy after "
                        f"{START_WAIT_S:g} s: {self.tail(server)}"
                    )
                time.sleep(POLL_S)  # poll a condition with a deadline

    def tail(self, name: str, lines: int = 5) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for name, process in self.processes.items():
            if name != "memcached":
                _kill_group(process.pid)  # workers that outlived their parent
        self.processes.clear()

    def __enter__(self) -> "SwiftAllInOne":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    """SIGKILL the process group `pgid` if it still has members (a server's workers)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _swift_version() -> str:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "swift"],
            env=ENV,
            check=False,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.decode().strip() or "unknown"
