"""keep_freed_memory: a step-sized tensor comes from the reusable heap, not from a fresh mmap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# MB of mmap'd blocks that one 24 MB tensor adds (glibc's mallinfo2().hblkhd before and after):
# untuned glibc maps it afresh, and unmaps it again when freed; tuned, the heap serves it.
PROBE = """
import ctypes, sys
import torch
from hpc_rnn.heap import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
                .split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else False
before = libc.mallinfo2().hblkhd
x = torch.ones(24 * 2**20 // 4)
print(tuned, (libc.mallinfo2().hblkhd - before) / 2**20)
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")


def _probe(mode: str, **env: str) -> tuple[bool, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", float(out[1])


def test_a_step_sized_tensor_comes_from_the_heap_once_tuned() -> None:
    tuned, mapped_tuned = _probe("tuned")
    assert tuned
    assert mapped_tuned == 0
    _, mapped_plain = _probe("plain")
    assert mapped_plain >= 24


def test_a_users_own_malloc_setting_is_left_alone() -> None:
    tuned, mapped = _probe("tuned", MALLOC_MMAP_THRESHOLD_="131072")
    assert not tuned
    assert mapped >= 24
