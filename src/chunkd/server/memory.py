"""Keep freed heap memory for reuse rather than giving it back to the kernel at once.

A server receiving bodies allocates and frees blocks of 64 KiB to a few MiB all the time: each
read from a socket, each chunk handed to the app, each batch handed to a disk thread. glibc's
malloc serves blocks from 128 KiB up (a threshold that only rises as such blocks are freed)
with a fresh ``mmap`` and trims free memory at the top of its heaps back to the kernel, so
every such block is faulted in again page by page, zero-filled. On a virtual machine whose
balloon reports free memory to the host that is a trip to the host per page; on any machine
it is CPU that moves no byte.

Fixed thresholds keep blocks under ``MMAP_THRESHOLD`` on the heap and up to
``TRIM_THRESHOLD`` of free heap for the next request. On the benchmark machine (chunkd with
``--no-fsync --digests none`` under uvicorn, three runs each, docs/benchmarks.md), one 1 GiB
PATCH went from 54-63 thousand minor faults to 1.1 thousand (676-773 -> 836-892 MB/s) and 32
concurrent 32 MiB uploads from 83-123 thousand to 7-8 thousand (516-568 -> 619-654 MB/s), for
2-4 MiB more peak RSS. Thresholds of 1 and 8 MiB were as fast on those runs, but 32 chunks of
256 KiB in flight (tests/server/test_memory.py) already overflow an 8 MiB trim threshold.

Only glibc has ``mallopt``; elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process; whether it took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - glibc, not a look-alike without mallopt
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
