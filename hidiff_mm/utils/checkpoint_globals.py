# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Loading MMEngine checkpoints with ``torch.load(weights_only=True)``.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and MMEngine 0.10.7 calls
``torch.load(filename, map_location=...)`` without that argument, so ``resume`` / ``load_from``
refuse MMEngine's own checkpoints (``Unsupported global: GLOBAL mmengine.logging.history_buffer.
HistoryBuffer``). :func:`mmengine_checkpoint_globals` allow-lists exactly the globals such a
checkpoint pickles, only while its ``with`` block runs; every place of hidiff_mm that loads a
checkpoint (and :class:`hidiff_mm.engine.WeightsOnlyRunner`, through which ``tools/train.py``
and ``tools/test.py`` resume and load) enters it.

MMagic's own tools (``mmagic/.mim/tools/train.py``, ``test.py``) build MMEngine's plain
``Runner`` and load outside any scope of ours; the only code of ours they run is the config's
``custom_imports = ['hidiff_mm']``. So ``import hidiff_mm`` calls
:func:`allow_mmengine_checkpoints`, which adds the same list to torch's allow-list for the
whole process, and nothing more: no other global, no ``weights_only=False``.

The list, found by disassembling a real ``iter_N.pth`` (``pickletools``): ``HistoryBuffer``
(message hub logs); ``numpy.core.multiarray._reconstruct`` and ``numpy.ndarray`` (arrays inside
HistoryBuffer); ``numpy.dtype`` plus the concrete dtype classes (``np.dtype(...)`` returns e.g.
``numpy.dtypes.Float64DType`` instances, and the unpickler only restores the state of listed
types); ``numpy.core.multiarray.scalar`` (numpy scalars in the runtime info, e.g. ``eta``); and
``_codecs.encode`` (how protocol 2 spells ``bytes``; already on torch's default list). Numpy 2
spells the module ``numpy._core.multiarray``; both spellings map to the same functions, so
checkpoints written under either numpy load under both.

``builtins.getattr`` does *not* come from numpy. It comes from ``HistoryBuffer.__getstate__``,
which stores the class-level ``_statistics_methods`` dict ``{'min': HistoryBuffer.min, ...}``;
pickle protocol 2 (``torch.save``'s default) cannot name the qualname ``HistoryBuffer.min`` and
emits ``getattr(HistoryBuffer, 'min')``. Instead of allowing the real ``getattr``, the name is
mapped to :func:`_history_buffer_getattr`, which returns only ``HistoryBuffer.{min,max,current,
mean}``. Anything else a pickle asks for (``os.system``, ``builtins.eval``, other classes) is
still refused with ``UnpicklingError``; ``weights_only=False`` is never used.

*Delete when:* the pinned MMEngine loads its own checkpoints under ``weights_only=True``
(0.10.7, the latest release, does not).
"""
import functools
import pickle
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple, Union

import torch.serialization

SafeGlobal = Union[Callable, Tuple[Callable, str]]

_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """The only ``getattr`` an MMEngine checkpoint may call while loading.

    Stands in for ``builtins.getattr`` in the weights-only unpickler and returns
    ``HistoryBuffer.{min,max,current,mean}``; anything else raises ``UnpicklingError``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'hidiff_mm: refusing getattr({obj!r}, {name!r}) while loading a checkpoint; only '
        'HistoryBuffer statistics methods are allowed.')


@functools.lru_cache(maxsize=None)
def mmengine_safe_globals() -> Tuple[SafeGlobal, ...]:
    """The allow-list: objects, or ``(object, 'module.name')`` pairs, as
    ``torch.serialization.add_safe_globals`` takes them."""
    import _codecs

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    safe: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        (_codecs.encode, '_codecs.encode'),
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe.append((multiarray._reconstruct, f'{module}._reconstruct'))
        safe.append((multiarray.scalar, f'{module}.scalar'))
    dtype_classes = {type(np.dtype(t)) for t in set(np.sctypeDict.values())}
    safe.extend(sorted(dtype_classes, key=lambda c: c.__name__))
    return tuple(safe)


def allow_mmengine_checkpoints() -> None:
    """Add :func:`mmengine_safe_globals` to torch's allow-list for the rest of the process
    (``import hidiff_mm`` does), so that MMEngine's plain ``Runner`` resumes and loads MMEngine
    checkpoints under ``weights_only=True``. Idempotent; does nothing with torch < 2.4."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(list(mmengine_safe_globals()))


@contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` accepts MMEngine checkpoints.

    On exit exactly the entries this call added are removed again: entries that were allowed
    before (by the user, or an enclosing block) stay, and so do entries added meanwhile. Like
    ``torch.serialization.safe_globals``, the allow-list is the process's while the block runs
    (other threads loading at the same time see it too). With torch < 2.4 (no allow-list) the
    block does nothing.
    """
    serialization = torch.serialization
    if not hasattr(serialization, 'add_safe_globals'):
        yield
        return
    before = set(serialization.get_safe_globals())
    added = [entry for entry in mmengine_safe_globals() if entry not in before]
    serialization.add_safe_globals(added)
    try:
        yield
    finally:
        remaining = [entry for entry in serialization.get_safe_globals() if entry not in added]
        serialization.clear_safe_globals()
        serialization.add_safe_globals(remaining)
