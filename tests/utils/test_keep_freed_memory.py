"""keep_freed_memory: freed large blocks are reused, not unmapped and faulted in again."""
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hidiff_mm.utils.cli import MALLOC_ENV, keep_freed_memory

TOOLS = str(Path(__file__).resolve().parents[2] / 'tools')
GLIBC = hasattr(ctypes.CDLL(None), 'gnu_get_libc_version')

# Allocate, touch and free a 64 MiB block 8 times; print the minor page faults that took.
CHILD = """
import ctypes, resource, sys
sys.path.insert(0, {tools!r})
from light_import import import_alone
applied = import_alone('utils.cli').keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(malloc_env: str):
    env = dict(os.environ, **{MALLOC_ENV: malloc_env})
    out = subprocess.run([sys.executable, '-c', CHILD.format(tools=TOOLS)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == 'True', int(out[1])


@pytest.mark.skipif(not GLIBC, reason='mallopt is glibc-only')
def test_freed_blocks_are_reused():
    applied, kept = faults('keep')
    not_applied, default = faults('default')
    assert applied and not not_applied
    pages = (64 << 20) // 4096  # 16384 faults each time the block is mapped afresh
    assert default >= 7 * pages   # glibc maps and unmaps the block every time
    assert kept <= 2 * pages      # faulted in once, then reused


def test_default_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv(MALLOC_ENV, 'default')
    assert keep_freed_memory() is False


# Inside large_blocks_returned: 64 MiB and 16 MiB blocks that the heap has no room for are
# mapped afresh each time; after it, the 64 MiB block is kept again (the heap grows once).
CHILD_LARGE = """
import ctypes, resource, sys
sys.path.insert(0, {tools!r})
from light_import import import_alone
cli = import_alone('utils.cli')
cli.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)

def faults(size):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

with cli.large_blocks_returned() as changed:
    inside = faults(64 << 20), faults(16 << 20)
print(changed, *inside, faults(64 << 20))
"""


@pytest.mark.skipif(not GLIBC, reason='mallopt is glibc-only')
def test_large_blocks_are_returned_inside_the_context_only():
    env = dict(os.environ, **{MALLOC_ENV: 'keep'})
    out = subprocess.run([sys.executable, '-c', CHILD_LARGE.format(tools=TOOLS)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    pages = (64 << 20) // 4096
    assert out[0] == 'True'
    large, small, after = map(int, out[1:])
    assert large >= 7 * pages       # mapped afresh every time
    assert small >= 7 * pages // 4  # 16 MiB blocks (4096 pages each) too
    assert after <= 2 * pages       # faulted in once, then reused


def test_large_blocks_context_is_a_no_op_without_keep(monkeypatch):
    monkeypatch.setenv(MALLOC_ENV, 'default')
    from hidiff_mm.utils import cli
    monkeypatch.setattr(cli, '_kept', False)
    with cli.large_blocks_returned() as changed:
        assert changed is False
