"""Keep freed memory in the process instead of handing it back to the system at every step.

glibc's malloc serves blocks above its mmap threshold (128 KiB at start, raised as such blocks
are freed, at most 32 MiB) with fresh pages from the kernel, and returns the top of its heap
to the kernel whenever more than twice that threshold lies free there. A training step frees
all its activations at once; the next step faults every page back in, and a test batch of
500 CIFAR images makes 33 MB activations, above the largest threshold, so each is mapped and
unmapped again: on a CPU, the training loop and the tests spent much of their time in page
faults (docs/speed.md has the measured difference). Here the process keeps what it freed
(the heap's top is never trimmed, blocks up to 32 MiB come from the heap): its resident size
stays at its peak, which a training process reaches in its first steps anyway.

Allocation only: every number computed is the same. A no-op where the C library is not glibc
(macOS, musl) or where the user set glibc's own MALLOC_* tunables.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
HEAP_BLOCKS_UP_TO = 32 * 2**20  # glibc's largest mmap threshold on 64-bit systems
NEVER_TRIM = 2**31 - 1  # mallopt takes an int
TOP_PAD = 64 * 2**20  # the heap grows in steps of this: fewer brk calls while it warms up


def keep_freed_memory() -> bool:
    """Set glibc's allocator to keep freed memory; returns whether it was set."""
    if any(name.startswith("MALLOC_") for name in os.environ) or "GLIBC_TUNABLES" in os.environ:
        return False  # the user tuned malloc already
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # The mmap threshold first: setting any of them fixes all (no more dynamic raising).
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO), (_M_TRIM_THRESHOLD, NEVER_TRIM),
        (_M_TOP_PAD, TOP_PAD)))
