"""`cairn bench dedup`: dedup ratio and throughput of our codec against restic, same data.

Theory of operation. A versioned dataset is built in a temporary directory from the files
of the Python installation's standard library (source text, bytecode, shared objects;
site-packages excluded): version 0 is a seeded random sample of `base_bytes`, each later
version a copy of the one before with edits that real trees get: small insertions and
deletions that shift the bytes after them, appended lines, a few files removed and added.
Every version also holds `bundle.tar`, an uncompressed tar (fixed mtimes) of its text
files: a large file in which edits shift everything after them, where content-defined
chunking matters most.

Both systems then see the same files, one object (file) at a time. Cairn: every file goes
through `WritePipeline` on all cores, chunks already seen are not encoded again
(`DedupStats.claim`), and we count logical, unique and stored (compressed, encrypted,
framed) bytes. restic (if installed): `restic init` (repository v2, compression auto),
`restic backup` of the dataset directory, `restic stats --mode raw-data`. restic's stored
bytes are its blobs after compression and encryption, without pack and index overhead,
which matches our stored bytes (chunk records without segment or index overhead). restic
0.14 does not report the uncompressed size, so a second backup into a repository with
`--compression off` gives its unique bytes (dedup alone; timed figures are from the first).
restic counts its tree (directory metadata) blobs too; they are a small share here.
Without restic the bench still runs and says restic was absent.
"""

import json
import os
import random
import shutil
import subprocess
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cairn.codec import (
    ChunkCodec,
    Chunker,
    ChunkingParams,
    CodecPolicy,
    DedupStats,
    WritePipeline,
)

MiB = 1024 * 1024
BENCH_CLUSTER_KEY = b"cairn-bench-cluster-key-not-secret"
RESTIC_PASSWORD = "cairn-bench-not-secret"
RESTIC_TIMEOUT_SECONDS = 900
FILE_BYTES_MAX_SHARE = 8
"""No file larger than base_bytes / FILE_BYTES_MAX_SHARE is sampled (keeps variety)."""
TEXT_SUFFIXES = (".py", ".txt", ".rst", ".json", ".cfg", ".toml", ".html", ".css")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DedupBenchConfig:
    base_bytes: int = 64 * MiB
    versions: int = 5
    seed: int = 0
    edit_probability: float = 0.15
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    restic_bin: str = "restic"
    chunking: ChunkingParams = field(default_factory=ChunkingParams)
    stdlib_dir: str = field(default_factory=lambda: sysconfig.get_paths()["stdlib"])


@dataclass
class DatasetInfo:
    root: Path
    files: int = 0
    logical_bytes: int = 0
    paths: list[Path] = field(default_factory=list)


def _sample_stdlib(config: DedupBenchConfig, rng: random.Random) -> list[Path]:
    root = Path(config.stdlib_dir)
    limit = max(1, config.base_bytes // FILE_BYTES_MAX_SHARE)
    candidates: list[Path] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "site-packages")
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink() and 0 < path.stat().st_size <= limit:
                candidates.append(path)
    rng.shuffle(candidates)
    chosen: list[Path] = []
    total = 0
    for path in candidates:
        if total >= config.base_bytes:
            break
        chosen.append(path)
        total += path.stat().st_size
    return chosen


def _edit(data: bytes, rng: random.Random) -> bytes:
    """Insertions and deletions that shift bytes, or an append, as a commit would."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        position = rng.randrange(len(out) + 1)
        if kind < 0.5:
            out[position:position] = f"# edit {rng.getrandbits(64):x}\n".encode() * rng.randint(
                1, 20
            )
        elif kind < 0.8 and out:
            del out[position : position + rng.randint(1, 400)]
        else:
            out += rng.randbytes(rng.randint(1, 2000))
    return bytes(out)


def _write_bundle(version_dir: Path) -> None:
    """An uncompressed tar of the version's text files, with fixed metadata."""
    with tarfile.open(version_dir / "bundle.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(version_dir.rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                info = tarfile.TarInfo(str(path.relative_to(version_dir)))
                info.size = path.stat().st_size
                info.mtime = 0
                with path.open("rb") as handle:
                    tar.addfile(info, handle)


def build_dataset(config: DedupBenchConfig, root: Path, progress: Progress) -> DatasetInfo:
    rng = random.Random(config.seed)
    stdlib = Path(config.stdlib_dir)
    files: dict[str, bytes] = {
        str(path.relative_to(stdlib)): path.read_bytes() for path in _sample_stdlib(config, rng)
    }
    info = DatasetInfo(root=root)
    for version in range(config.versions):
        if version > 0:
            names = sorted(files)
            for name in names:
                roll = rng.random()
                if roll < config.edit_probability:
                    files[name] = _edit(files[name], rng)
                elif roll < config.edit_probability + 0.01:
                    del files[name]
            for _ in range(max(1, len(names) // 100)):
                donor = rng.choice(names)
                if donor in files:
                    files[f"added/v{version}/{len(files)}/{Path(donor).name}"] = _edit(
                        files[donor], rng
                    )
        version_dir = root / f"v{version}"
        for name, data in files.items():
            target = version_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        _write_bundle(version_dir)
        progress(f"dataset version {version}: {len(files)} files")
    info.paths = sorted(path for path in root.rglob("*") if path.is_file())
    info.files = len(info.paths)
    info.logical_bytes = sum(path.stat().st_size for path in info.paths)
    return info


def _open_each(paths: list[Path]) -> Iterator[BinaryIO]:
    for path in paths:
        with path.open("rb") as handle:
            yield handle


def run_cairn(config: DedupBenchConfig, dataset: DatasetInfo) -> dict[str, Any]:
    codec = ChunkCodec.from_cluster_key(BENCH_CLUSTER_KEY, CodecPolicy())
    stats = DedupStats()
    start = time.perf_counter()
    with WritePipeline(codec, Chunker(config.chunking), workers=config.workers) as pipeline:
        for chunk in pipeline.run_many(_open_each(dataset.paths), skip=stats.claim):
            stored = None if chunk.record is None else len(chunk.record)
            stats.add(chunk.chunk_id, chunk.length_bytes, stored)
    seconds = time.perf_counter() - start
    return {
        "logical_bytes": stats.logical_bytes,
        "unique_bytes": stats.unique_bytes,
        "stored_bytes": stats.stored_bytes,
        "chunk_refs": stats.chunk_refs,
        "unique_chunks": stats.unique_chunks,
        "dedup_ratio": round(stats.dedup_ratio, 3),
        "reduction_ratio": round(stats.reduction_ratio, 3),
        "seconds": round(seconds, 3),
        "gbps": round(stats.logical_bytes / seconds / 1e9, 3),
        "workers": config.workers,
    }


def _restic(binary: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=RESTIC_TIMEOUT_SECONDS,
    )


def run_restic(
    config: DedupBenchConfig, dataset: DatasetInfo, scratch: Path, progress: Progress
) -> dict[str, Any]:
    binary = shutil.which(config.restic_bin)
    if binary is None:
        progress(f"restic not found ({config.restic_bin!r}); measuring Cairn alone")
        return {"available": False, "reason": f"{config.restic_bin!r} not found on PATH"}
    env = {**os.environ, "RESTIC_PASSWORD": RESTIC_PASSWORD}
    runs: dict[str, tuple[float, dict[str, Any]]] = {}
    try:
        version = _restic(binary, ["version"], env).stdout.strip()
        for compression in ("auto", "off"):
            env["RESTIC_REPOSITORY"] = str(scratch / f"restic-repo-{compression}")
            env["RESTIC_CACHE_DIR"] = str(scratch / f"restic-cache-{compression}")
            _restic(binary, ["init", "--repository-version", "2"], env)
            progress(f"restic backup (compression {compression})")
            start = time.perf_counter()
            backup = ["backup", "--quiet", "--compression", compression, str(dataset.root)]
            _restic(binary, backup, env)
            seconds = time.perf_counter() - start
            stats_args = ["stats", "--json", "--mode", "raw-data"]
            runs[compression] = (seconds, json.loads(_restic(binary, stats_args, env).stdout))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError) as error:
        detail = getattr(error, "stderr", "") or ""
        return {"available": False, "reason": f"restic failed: {error} {detail}".strip()}
    seconds, stats = runs["auto"]
    stored = int(stats["total_size"])
    unique = int(runs["off"][1]["total_size"])
    return {
        "available": True,
        "version": version,
        "stored_bytes": stored,
        "unique_bytes": unique,
        "blobs": int(stats.get("total_blob_count", 0)),
        "dedup_ratio": round(dataset.logical_bytes / unique, 3) if unique else None,
        "reduction_ratio": round(dataset.logical_bytes / stored, 3) if stored else None,
        "seconds": round(seconds, 3),
        "gbps": round(dataset.logical_bytes / seconds / 1e9, 3),
    }


def run_dedup_bench(config: DedupBenchConfig, progress: Progress) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-dedup-") as scratch_text:
        scratch = Path(scratch_text)
        dataset = build_dataset(config, scratch / "dataset", progress)
        progress(f"dataset: {dataset.files} files, {dataset.logical_bytes / MiB:.1f} MiB")
        progress("cairn codec")
        cairn = run_cairn(config, dataset)
        restic = run_restic(config, dataset, scratch, progress)
    result: dict[str, Any] = {
        "bench": "dedup",
        "config": {**asdict(config), "base_mib": config.base_bytes / MiB},
        "dataset": {
            "files": dataset.files,
            "versions": config.versions,
            "logical_bytes": dataset.logical_bytes,
        },
        "cairn": cairn,
        "restic": restic,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if restic.get("available") and restic.get("stored_bytes"):
        result["cairn_to_restic_stored"] = round(cairn["stored_bytes"] / restic["stored_bytes"], 3)
        result["cairn_to_restic_gbps"] = round(cairn["gbps"] / restic["gbps"], 3)
    return result
