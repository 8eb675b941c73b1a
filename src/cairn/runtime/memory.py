"""Allocator tuning for a process that moves megabyte-sized buffers all day.

glibc serves allocations above a threshold (128 KiB at first) with a fresh `mmap` and
returns them with `munmap`, so every received chunk or frame buffer starts as untouched
pages: the kernel faults in and zeroes each 4 KiB page on first write. With 64 one-MiB
frames in flight this measured ~0.86 ms per allocation (~1.2 GB/s) and was the largest
cost in `cairn bench rpc` at 1 MiB payloads (py-spy: 28% of the server's samples).
Raising the mmap threshold and the trim threshold keeps freed large blocks in the heap
for reuse: the same allocation then took ~0.2 ms. The price is that up to
`TRIM_THRESHOLD_BYTES` of freed memory stays with the process instead of returning to
the kernel, which suits a long-lived server.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 << 20
TRIM_THRESHOLD_BYTES = 256 << 20

_tuned = False


def tune_allocator() -> bool:
    """Apply the thresholds once per process; False where there is no glibc `mallopt`."""
    global _tuned
    if _tuned:
        return True
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    libc = ctypes.CDLL(library)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    _tuned = ok
    return ok
