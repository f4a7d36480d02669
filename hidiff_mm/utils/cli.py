"""How the tools in ``tools/`` report errors: one line for what a user can fix, tracebacks for bugs.

Each tool ends with ``run(main)``. An error is the user's by where it was raised, never by its
type (:func:`is_user_error`):

* a :class:`hidiff_mm.utils.errors.UserError` (``InputError``, ``ConfigError``,
  ``CheckpointError``), raised only where an argument, a config value or a file the user named is
  checked;
* any exception raised inside :func:`user_input`, the context the tools put around parsing
  their arguments, reading the config and reading the files the user named;
* an exception raised by MMEngine's registry itself while it builds an object a config
  describes: an unknown ``type`` (``KeyError``) or an argument the class does not take
  (``TypeError`` raised at the call, before any of the class's code runs);
* an ``OSError``: the operating system refused a file operation (missing file, no permission,
  full disk); the message names the path.

These are printed as one line on stderr, ``<tool>: error: <message>``, and the exit status is 2,
as for argparse's own usage errors. A :class:`ToolError` (a fault already phrased for the user,
e.g. a training run that stopped) is printed the same way with its own exit status. Anything
else is a bug and keeps Python's traceback (exit status 1), a ``TypeError`` or ``ValueError``
raised in model code included. ``--debug`` anywhere on the command line, or ``HIDIFF_DEBUG=1``
in the environment, prints the full traceback of every error too; ``--debug`` is removed from
the arguments before ``main`` parses them and exported as ``HIDIFF_DEBUG=1`` so that child
processes (``torchrun`` ranks, ``tools/quickstart.py``'s steps) show theirs as well. ``main`` is
called in-process by the tests, where exceptions propagate as usual.

This module imports nothing from hidiff_mm (``tools/light_import.py`` loads it alone), so a
:class:`~hidiff_mm.utils.errors.UserError` is recognised by its class attribute
``user_error = True``.
"""
import argparse
import ctypes
import logging
import os
import os.path as osp
import re
import subprocess
import sys
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn, Optional

DEBUG_ENV = 'HIDIFF_DEBUG'
USER_ERROR_EXIT = 2
#: The folder of MMEngine's registry, as it appears in a traceback's file names.
REGISTRY_CODE = f'{os.sep}mmengine{os.sep}registry{os.sep}'


class ToolError(Exception):
    """An error already phrased for the user, printed as one line; exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def user_input(what: Optional[str] = None) -> Iterator[None]:
    """Count every error raised inside as the user's (see :func:`is_user_error`).

    Put it around the code that reads what the user gave, and only that: parsing and checking
    arguments, ``Config.fromfile`` and ``merge_from_dict``, reading a file the user named. Never
    around building or running a model. The exception keeps its type and traceback; it is
    marked (``user_error = True``) and, with ``what``, its message says where it came from
    (``what: <message>``) unless it is a ``UserError`` or an ``OSError``, which name their
    file already.
    """
    try:
        yield
    except Exception as err:
        if what and not is_user_error(err):
            err.input_source = what
        err.user_error = True
        raise


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is the user's to fix, by where it was raised (module docstring)."""
    return bool(getattr(err, 'user_error', False)) or isinstance(err, OSError) or \
        raised_by_registry(err)


def raised_by_registry(err: BaseException) -> bool:
    """Whether ``err`` was raised by MMEngine's registry itself (its innermost frame is there):
    an unknown ``type``, or arguments that the built class does not take. An error raised
    inside the class's own code has its innermost frame there instead."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return REGISTRY_CODE in tb.tb_frame.f_code.co_filename


def key_value(text: str) -> str:
    """argparse ``type`` of a ``--cfg-options`` item: ``KEY=VALUE`` passes through unchanged,
    anything else is a usage error that names the item (MMEngine's ``DictAction`` would fail on
    it with an unpacking error)."""
    key, sep, _ = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    return text


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, '') not in ('', '0')


def error_message(err: BaseException) -> str:
    """The user-facing text of ``err``.

    A ``KeyError``'s message loses its quotes; an error re-raised from a DataLoader worker
    (whose message holds the worker's traceback) becomes its last line plus the worker.
    """
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    elif isinstance(err, subprocess.CalledProcessError):
        cmd = err.cmd if isinstance(err.cmd, str) else ' '.join(map(str, err.cmd))
        text = f'{cmd!r} failed with exit status {err.returncode} (its error is printed above)'
    else:
        text = str(err).strip() or type(err).__name__
    if 'Original Traceback' in text:
        lines = [line for line in text.splitlines() if line.strip()]
        last = re.sub(r'^[\w.]+\.(\w+): ', r'\1: ', lines[-1].strip())  # no module path
        text = f'{last} ({lines[0].strip().rstrip(".")})'
    source = getattr(err, 'input_source', None)
    if source:
        kind = '' if isinstance(err, (ValueError, KeyError)) else f'{type(err).__name__}: '
        text = f'{source}: {kind}{text}'
    return text


def _multi_process() -> bool:
    """Whether this process is one rank of a multi-process run (a launcher set WORLD_SIZE)."""
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def _prefix() -> str:
    prog = osp.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'hidiff_mm'
    if _multi_process():
        prog += f' [rank {os.environ.get("RANK", "?")}]'
    return prog


def report(err: BaseException, exit_code: int) -> NoReturn:
    """Print ``err`` as one line (plus its traceback in debug mode) and exit with ``exit_code``."""
    if debug_enabled():
        traceback.print_exception(err)
    print(f'{_prefix()}: error: {error_message(err)}', file=sys.stderr, flush=True)
    sys.exit(exit_code)


MALLOC_ENV = 'HIDIFF_MALLOC'
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes: 2 GiB
_MMAP_MAX_DEFAULT = 65536  # glibc's default M_MMAP_MAX
#: glibc's default mmap threshold (DEFAULT_MMAP_THRESHOLD_MIN): blocks above it are mapped.
LARGE_BLOCK = 128 << 10
_kept = False  # whether keep_freed_memory() is in effect


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    A forward pass makes and frees feature maps of tens to hundreds of MB; glibc serves blocks
    above its mmap threshold (at most 32 MB) with fresh ``mmap`` pages and unmaps them on
    ``free``, so every forward faults in and zeroes its large temporaries again (on a 2-core
    machine as much system time as compute, ``docs/performance.md``). This sets
    ``M_MMAP_MAX = 0`` and a 2 GiB ``M_TRIM_THRESHOLD``, as ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=2147483647`` would: the process keeps its peak heap until it exits.
    :func:`run` calls it for every tool; nothing calls it on import. Returns True when the
    setting was made; False, changing nothing, with ``HIDIFF_MALLOC=default`` or without glibc.
    """
    if os.environ.get(MALLOC_ENV, 'keep') == 'default':
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    global _kept
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _kept


@contextmanager
def large_blocks_returned() -> Iterator[bool]:
    """Inside, glibc's default for new blocks: those above :data:`LARGE_BLOCK` (128 KiB) that
    the heap has no free room for are mapped afresh and handed back to the OS when freed; free
    room the heap already holds is still reused. Yields whether anything changed: nothing does
    unless :func:`keep_freed_memory` is in effect.

    For the exact path's inference: its whole-map temporaries come in many sizes (1x, 2.66x,
    3x, 5.3x the channels, at every level's resolution), and a heap that keeps all of them
    fragments, so its peak grows far above the memory in use; keeping only blocks up to
    32 MiB (glibc's largest threshold) still left it at the official code's peak
    (``docs/performance.md``).
    """
    if not _kept:
        yield False
        return
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
    try:
        yield True
    finally:
        mallopt(_M_MMAP_MAX, 0)


def run(main: Callable[[], Any]) -> NoReturn:
    """Run a tool's ``main()`` (which parses ``sys.argv``) and exit with its status (an ``int``
    it returns; 0 for anything else). The process keeps its freed memory for reuse
    (:func:`keep_freed_memory`; ``HIDIFF_MALLOC=default`` to not)."""
    keep_freed_memory()
    if '--debug' in sys.argv[1:]:
        sys.argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a != '--debug']
        os.environ[DEBUG_ENV] = '1'
    try:
        code = main()
    except KeyboardInterrupt:
        if debug_enabled():
            traceback.print_exc()
        print(f'{_prefix()}: interrupted', file=sys.stderr, flush=True)
        sys.exit(130)
    except ToolError as err:
        report(err, err.exit_code)
    except subprocess.CalledProcessError as err:  # the child has printed its own error
        report(err, err.returncode if err.returncode > 0 else 1)
    except Exception as err:
        if not is_user_error(err):
            raise
        report(err, USER_ERROR_EXIT)
    code = code if isinstance(code, int) else 0
    if _multi_process():
        exit_rank(code)
    sys.exit(code)


def exit_rank(code: int) -> NoReturn:
    """End a finished rank of a multi-process run without the interpreter's teardown.

    The teardown destroys torch's C++ threads (DDP's reducer, gloo) in no fixed order, and a rank
    still aborts now and then with "terminate called without an active exception" (exit 134)
    after its run has finished and its process group was destroyed. The streams and the log
    files are flushed first, so nothing written is lost.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
