# Copyright (c) hidiff_mm contributors. All rights reserved.
"""What the pinned toolbox (MMagic 1.2.0, MMEngine 0.10.7, mmcv 2.1) needs
on a current Python/PyTorch stack.

:func:`apply` installs the pieces below. It is idempotent, imports neither
mmagic nor mmcv, and must run before anything imports mmagic:
``hidiff_mm/__init__.py``, ``tools/train.py``, ``tools/test.py`` and
``tests/conftest.py`` call it. Each piece checks its own condition and does
nothing when the environment does not need it, so the module can shrink
piece by piece as upstream catches up.

(a) ``mmcv.ops`` stand-in.
    *When:* mmcv is installed without compiled ops (``mmcv-lite``, or a full
    mmcv source tree with no ``mmcv/_ext*.so``). PyPI has no binary mmcv 2.1
    wheel and its sdist does not build against torch >= 2.14, but
    ``mmagic/models/editors/__init__.py`` imports every editor, and five of
    them (EDVR, TDAN, BasicVSR++, StyleGAN1/2) import ``mmcv.ops`` at module
    level, so ``import mmagic.models`` and ``import mmagic.evaluation`` fail
    with ``No module named 'mmcv._ext'``.
    *What:* a meta-path finder, placed before the regular path finder, serves
    ``mmcv.ops`` and any ``mmcv.ops.<sub>`` as stand-in modules. Any public
    attribute is a placeholder ``nn.Module`` subclass; instantiating or
    calling it (it doubles as the function ops such as ``nms``) raises a
    ``RuntimeError`` that names the op. The exceptions are
    ``get_compiler_version``/``get_compiling_cuda_version``, which return
    ``'n/a ...'`` so that ``mmcv.utils.collect_env()`` keeps working.
    Nothing in HI-Diff uses mmcv ops.
    ``mmcv._ext`` itself is not served, so ``mmengine``'s
    ``mmcv_full_available()`` stays False and it never takes its mmcv-ops
    code paths.
    *Steps aside:* when ``mmcv/_ext*.so`` exists (full mmcv), when mmcv is
    not installed, or when a real ``mmcv.ops`` is already imported.
    *Delete when:* a binary mmcv matching the pinned torch is installable,
    or mmagic stops importing ``mmcv.ops`` unconditionally.

(b) Loading MMEngine checkpoints with ``torch.load(weights_only=True)``.
    *When:* always, if ``torch.serialization.add_safe_globals`` exists
    (torch >= 2.4). torch >= 2.6 defaults to ``weights_only=True``, and
    MMEngine 0.10.7 calls ``torch.load(filename, map_location=...)`` without
    that argument, so ``resume``/``load_from`` refuse its own checkpoints
    (``Unsupported global: GLOBAL mmengine.logging.history_buffer.
    HistoryBuffer``).
    *What:* allow-list exactly the globals an MMEngine checkpoint pickles,
    found by disassembling a real ``iter_N.pth`` (``pickletools``):
    ``HistoryBuffer`` (message hub logs); ``numpy.core.multiarray.
    _reconstruct`` and ``numpy.ndarray`` (arrays inside HistoryBuffer);
    ``numpy.dtype`` plus the concrete dtype classes (``np.dtype(...)``
    returns e.g. ``numpy.dtypes.Float64DType`` instances, and the unpickler
    only restores state of allow-listed types); ``numpy.core.multiarray.
    scalar`` (numpy scalars in runtime info, e.g. ``eta``); and
    ``_codecs.encode`` (how protocol 2 spells ``bytes``; already on torch's
    default list). Numpy 2 spells the module ``numpy._core.multiarray``;
    both spellings map to the same functions, so checkpoints written under
    either numpy load under both.

    ``builtins.getattr`` does *not* come from numpy. It comes from
    ``HistoryBuffer.__getstate__``, which stores the class-level
    ``_statistics_methods`` dict ``{'min': HistoryBuffer.min, ...}``. Pickle
    protocol 2 (``torch.save``'s default) cannot name the dotted qualname
    ``HistoryBuffer.min`` directly and emits ``getattr(HistoryBuffer,
    'min')``. It cannot be avoided for existing checkpoints, so instead of
    allowing the real ``getattr`` the name ``builtins.getattr`` is mapped to
    :func:`_history_buffer_getattr`, which returns only
    ``HistoryBuffer.{min,max,current,mean}`` and refuses everything else.
    Anything else a pickle asks for (``os.system``, ``builtins.eval``, other
    classes) is still refused with ``UnpicklingError``.
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` and ``weights_only=False`` are
    never used.
    *Delete when:* the pinned MMEngine loads its own checkpoints under
    ``weights_only=True`` (0.10.7, the latest release, does not).

(c) ``np.bool8`` alias.
    *When:* numpy >= 2 (the pinned stack has numpy 1.26, where it is a no-op).
    ``mmagic/utils/trans_utils.py`` uses ``np.bool8``, removed in numpy 2.
    *Delete when:* numpy < 2 is pinned for good, or mmagic is fixed.

(d) torchvision op schemas.
    *When:* lazily, during the first ``import torchvision``, and only if
    torchvision's own ``extension._has_ops()`` says its compiled ops
    (``_C``/``_C_stable``) failed to load, e.g. a CUDA torchvision wheel
    beside a CPU-only torch (it links ``libtorch_cuda.so``). torchvision
    0.28 then still registers fake kernels for ``torchvision::nms``/``qnms``
    at import and fails with ``operator torchvision::nms does not exist``.
    Defining the two schemas lets the pure-Python parts (``make_grid``,
    transforms, vgg) import; calling ``nms`` then raises torchvision's own
    "Couldn't load custom C++ ops" error. Checked with torch 2.13.0+cpu and
    torchvision 0.28.0+cu130. A meta-path hook waits until
    ``torchvision.extension`` has finished executing and acts (once) at the
    next ``torchvision.*`` import, which ``torchvision/__init__.py`` does
    right after it. With the pinned torch/torchvision pair the ops load and
    this is a no-op.
    *Delete when:* torch and torchvision are always installed as a matching
    pair.

(e) Multi-process training on CPU (gloo). Not part of :func:`apply`:
    ``tools/train.py`` and ``tools/test.py`` call
    :func:`setup_cpu_distributed` before building the Runner and
    :func:`teardown_distributed` at the end.
    *When:* no CUDA device and a launcher other than ``none``.
    MMEngine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` without
    checking for CUDA (``_init_dist_slurm`` even divides by the GPU count),
    and ``Runner.wrap_model`` gives DDP ``device_ids=[LOCAL_RANK]``, which
    DDP rejects for CPU modules.
    *What:* (1) initialise the process group with ``gloo`` ourselves (for
    slurm, first derive ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*``
    from the ``SLURM_*`` variables, as MMEngine does); ``Runner.setup_env``
    skips ``init_dist`` when a group exists, so the config's
    ``backend='nccl'`` is harmless. (2) Set ``model_wrapper_cfg.device_ids =
    None`` (keeping a config-provided wrapper type such as
    ``MMSeparateDistributedDataParallel``) and ``broadcast_buffers=False``
    unless the config sets it. (3) ``barrier()`` + ``destroy_process_group()``
    at the end: without it a rank sometimes aborts at exit ("terminate called
    without an active exception", 2 of 3 runs).
    *Delete when:* MMEngine's launcher handles CPU/gloo itself.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

__all__ = [
    'apply', 'mmcv_ops_stub_needed', 'mmengine_safe_globals', 'setup_cpu_distributed',
    'teardown_distributed', 'MMCV_OPS_ERROR'
]

MMCV_OPS_ERROR = (
    'mmcv.ops.{name} needs mmcv built with compiled ops (mmcv._ext), but '
    'this environment has mmcv without them (e.g. mmcv-lite), so '
    'hidiff_mm.compat serves a stand-in mmcv.ops that only lets mmagic '
    'import. Install full mmcv==2.1.0 built from source to use this op '
    '(see docs/install.md).')

_APPLIED = False


def apply():
    """Install every compatibility piece this environment needs.

    Safe to call any number of times; only the first call does work.
    """
    global _APPLIED
    if _APPLIED:
        return
    _install_mmcv_ops_stub()
    _allow_mmengine_checkpoint_globals()
    _alias_numpy_bool8()
    _install_torchvision_schema_hook()
    _APPLIED = True


# --------------------------------------------------------------------------
# (a) mmcv.ops stand-in
# --------------------------------------------------------------------------
def _mmcv_dir():
    """Directory of the installed mmcv package, found without importing it."""
    spec = importlib.machinery.PathFinder.find_spec('mmcv')
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _mmcv_ext_present():
    """Whether mmcv's compiled extension ``mmcv/_ext*.so`` is installed."""
    mmcv_dir = _mmcv_dir()
    if mmcv_dir is None:
        return False
    return any(
        os.path.exists(os.path.join(mmcv_dir, '_ext' + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def mmcv_ops_stub_needed():
    """Decide whether the ``mmcv.ops`` stand-in should be installed.

    Returns:
        bool: True only if mmcv is installed, its compiled ops are absent
        and no real ``mmcv.ops`` has been imported yet.
    """
    if 'mmcv.ops' in sys.modules:
        return isinstance(sys.modules['mmcv.ops'], _StubModule)
    return _mmcv_dir() is not None and not _mmcv_ext_present()


_STUB_VALUES = {
    # mmcv.utils.collect_env() calls these to log the build; answer instead
    # of raising so that environment reports keep working.
    'get_compiler_version': lambda: 'n/a (mmcv.ops stand-in, no _ext)',
    'get_compiling_cuda_version': lambda: 'n/a (mmcv.ops stand-in, no _ext)',
}


class _StubModule(type(sys)):
    """A stand-in ``mmcv.ops`` (sub)module; see :data:`MMCV_OPS_ERROR`."""

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        if name in _STUB_VALUES:
            value = _STUB_VALUES[name]
        else:
            value = _placeholder(self.__name__, name)
        setattr(self, name, value)
        return value


def _placeholder(module_name, name):
    """A placeholder ``nn.Module`` class that raises when instantiated."""
    import torch.nn as nn

    def __init__(self, *args, **kwargs):
        raise RuntimeError(MMCV_OPS_ERROR.format(name=name))

    return type(name, (nn.Module, ), {
        '__init__': __init__,
        '__module__': module_name,
        '__doc__': f'Stand-in for mmcv.ops.{name}; raises when used.',
    })


class _MMCVOpsStubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``mmcv.ops`` and ``mmcv.ops.*`` as :class:`_StubModule`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'mmcv.ops' and not fullname.startswith('mmcv.ops.'):
            return None
        return importlib.util.spec_from_loader(
            fullname, self, is_package=True)

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []
        module.__all__ = []


def _install_mmcv_ops_stub():
    if any(isinstance(f, _MMCVOpsStubFinder) for f in sys.meta_path):
        return
    if mmcv_ops_stub_needed():
        sys.meta_path.insert(0, _MMCVOpsStubFinder())


# --------------------------------------------------------------------------
# (b) weights_only=True loading of MMEngine checkpoints
# --------------------------------------------------------------------------
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """The only ``getattr`` an MMEngine checkpoint may call while loading.

    Stands in for ``builtins.getattr`` in the weights-only unpickler and
    returns ``HistoryBuffer.{min,max,current,mean}``; anything else raises.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'hidiff_mm.compat: refusing getattr({obj!r}, {name!r}) while '
        'loading a checkpoint; only HistoryBuffer statistics methods are '
        'allowed.')


def mmengine_safe_globals():
    """The allow-list of (b): objects, or (object, 'module.name') pairs."""
    import _codecs

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    safe = [
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
    return safe


def _allow_mmengine_checkpoint_globals():
    import torch.serialization
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_safe_globals())


# --------------------------------------------------------------------------
# (c) np.bool8 under numpy 2
# --------------------------------------------------------------------------
def _alias_numpy_bool8():
    import numpy as np
    if int(np.__version__.split('.')[0]) >= 2 and 'bool8' not in vars(np):
        np.bool8 = np.bool_


# --------------------------------------------------------------------------
# (d) torchvision op schemas when torchvision/_C cannot load
# --------------------------------------------------------------------------
_torchvision_lib = None  # keeps the torch.library registrations alive


def _define_torchvision_schemas():
    global _torchvision_lib
    import torch
    _torchvision_lib = torch.library.Library('torchvision', 'DEF')
    for op in ('nms', 'qnms'):
        _torchvision_lib.define(
            f'{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')


def _torchvision_schemas_missing():
    import torch
    return not hasattr(torch.ops.torchvision, 'nms')


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    """Waits until ``torchvision.extension`` has tried to load the compiled
    ops, then (once) defines the schemas if it failed, and removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        extension = sys.modules.get('torchvision.extension')
        if (extension is None or not fullname.startswith('torchvision.')
                or getattr(extension.__spec__, '_initializing', False)):
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if not extension._has_ops() and _torchvision_schemas_missing():
            _define_torchvision_schemas()
        return None


def _install_torchvision_schema_hook():
    if 'torchvision' in sys.modules or any(
            isinstance(f, _TorchvisionHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionHook())


# --------------------------------------------------------------------------
# (e) multi-process runs on CPU (called by tools/train.py and tools/test.py)
# --------------------------------------------------------------------------
def _slurm_to_env():
    """Export torch's env:// variables from SLURM's, like MMEngine does."""
    import subprocess
    env = os.environ
    env.setdefault('RANK', env['SLURM_PROCID'])
    env.setdefault('WORLD_SIZE', env['SLURM_NTASKS'])
    env.setdefault('LOCAL_RANK', env.get('SLURM_LOCALID', '0'))
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        env['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')


def setup_cpu_distributed(cfg, launcher):
    """Prepare a CPU-only multi-process run; see (e) in the module docstring.

    Args:
        cfg (mmengine.Config): The config; ``model_wrapper_cfg`` is updated
            in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True if this call initialised a gloo process group.
    """
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available():
        return False
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    if 'find_unused_parameters' in cfg and 'find_unused_parameters' not in wrapper:
        wrapper['find_unused_parameters'] = cfg.find_unused_parameters
    cfg.model_wrapper_cfg = wrapper
    if dist.is_initialized():
        return False
    if launcher == 'slurm':
        _slurm_to_env()
    dist.init_process_group(backend='gloo')
    return True


def teardown_distributed():
    """Synchronise and destroy the default process group, if any."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
