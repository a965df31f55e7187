"""binwrn-run keeps freed memory in the process (binwrn/allocator.py): a batch's activations
come from the heap from the first step on, and what a step frees stays for the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Three steps of ten 8 MB blocks (a batch's activations) allocated, then freed together, in a
# fresh process; glibc's mallinfo2 says how much was mapped outside the heap while they
# lived, and how large the heap stayed after they were freed.
_STEPS = """
import ctypes, json, sys, torch
from binwrn.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print(json.dumps(None)); sys.exit()
libc.mallinfo2.restype = Info
steps = []
for _ in range(3):
    blocks = [torch.ones(2_000_000) for _ in range(10)]
    mapped = libc.mallinfo2().hblkhd
    del blocks
    steps.append((mapped >> 20, libc.mallinfo2().arena >> 20))
print(json.dumps({"kept": kept, "steps": steps}))
"""


def _steps(mode: str, env: dict | None = None) -> dict | None:
    done = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True,
                          text=True, check=True, env=env)
    return json.loads(done.stdout)


def test_activations_come_from_the_heap_and_stay_there() -> None:
    kept = _steps("keep")
    if kept is None or not kept["kept"]:
        pytest.skip("the C library is not glibc 2.33 or later: nothing to set or to read")
    for mapped_mb, heap_mb in kept["steps"]:
        assert mapped_mb < 40  # the 80 MB of blocks were not mapped one by one
        assert heap_mb >= 80  # and freeing them did not hand the heap back
    (first_mapped_mb, _), *_ = _steps("default")["steps"]
    assert first_mapped_mb >= 80  # glibc's default maps each new 8 MB block by itself


def test_a_users_own_malloc_settings_are_left_alone() -> None:
    result = _steps("keep", {**os.environ, "MALLOC_ARENA_MAX": "2"})
    assert result is None or result["kept"] is False
