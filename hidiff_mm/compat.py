# Copyright (c) hidiff_mm contributors. All rights reserved.
"""What the pinned toolbox (MMagic 1.2.0, mmcv-lite 2.1) needs in order to import.

:func:`apply` installs the two pieces below. It is idempotent, imports neither mmagic nor mmcv
(nor torch), and must run before anything imports mmagic: ``hidiff_mm/__init__.py`` and
``tests/conftest.py`` call it. It checks its own condition and does nothing when the
environment does not need it.

What used to live here and where it went, so that importing hidiff_mm changes nothing else in
the process:

* loading MMEngine checkpoints under ``torch.load(weights_only=True)``: a scoped allow-list,
  :func:`hidiff_mm.utils.checkpoint_globals.mmengine_checkpoint_globals`, entered by every
  checkpoint load of hidiff_mm and by :class:`hidiff_mm.engine.WeightsOnlyRunner`;
* multi-process runs on CPU (gloo): :mod:`hidiff_mm.engine.launcher`;
* the torchvision operator schemas for a torch/torchvision pair that does not match, and the
  ``np.bool8`` alias for numpy 2: removed; the install recipe (``requirements/torch.txt``, a
  matching torch/torchvision pair, and ``numpy<2`` in ``setup.cfg``) makes both unnecessary.

``mmcv.ops`` stand-in
    *When:* mmcv is installed without compiled ops (``mmcv-lite``, or a full mmcv source tree
    with no ``mmcv/_ext*.so``). PyPI has no binary mmcv 2.1 wheel and its sdist does not build
    against torch >= 2.14, but ``mmagic/models/editors/__init__.py`` imports every editor, and
    five of them (EDVR, TDAN, BasicVSR++, StyleGAN1/2) import ``mmcv.ops`` at module level, so
    ``import mmagic.models`` and ``import mmagic.evaluation`` fail with ``No module named
    'mmcv._ext'``.

    *What:* a meta-path finder serves ``mmcv.ops`` and the two submodules MMagic imports
    unconditionally, with exactly the names of :data:`STAND_INS`: the ones those five editors
    import at module level, and ``get_compiler_version`` / ``get_compiling_cuda_version``,
    which answer ``'n/a ...'`` so that ``mmcv.utils.collect_env()`` keeps working. Each other
    stand-in is a placeholder ``nn.Module`` subclass (the editors subclass some of them at
    import); instantiating or calling it (it doubles as the function ops) raises a
    ``RuntimeError`` naming the op. Every other name raises ``AttributeError`` (so
    ``hasattr`` is False and ``from mmcv.ops import nms`` raises ``ImportError``), and every
    other ``mmcv.ops.<sub>`` is not found: MMagic's own ``try: from mmcv.ops import ... except
    ImportError`` fallbacks (StyleGAN2/3, MSPIE, ADA) take their pure-PyTorch paths (and print
    their "not available" warnings). Nothing in HI-Diff uses mmcv ops. ``mmcv._ext`` itself is
    not served, so MMEngine's ``mmcv_full_available()`` stays False and it never takes its
    mmcv-ops code paths.

    *Steps aside:* when ``mmcv/_ext*.so`` exists (full mmcv), when mmcv is not installed, or
    when a real ``mmcv.ops`` is already imported.

    *Delete when:* a binary mmcv matching the pinned torch is installable, or mmagic stops
    importing ``mmcv.ops`` unconditionally.

``controlnet_aux`` stand-in
    *When:* the ``controlnet_aux`` package is not installed (the install recipe leaves it out:
    it pulls timm and a tree of detectors that nothing here uses).
    ``mmagic/apis/inferencers/__init__.py`` imports every inferencer, and the ControlNet
    animation one does ``from controlnet_aux import HEDdetector`` at module level, so
    ``from mmagic.apis import MMagicInferencer`` fails with ``No module named 'controlnet_aux'``
    and no MMagic inferencer can run, HI-Diff's included.

    *What:* a meta-path finder serves a module ``controlnet_aux`` with the one name MMagic
    imports, ``HEDdetector``: a class whose construction and ``from_pretrained`` raise a
    ``RuntimeError`` that says to install controlnet-aux. Every other name raises
    ``AttributeError``; submodules are not served.

    *Steps aside:* when ``controlnet_aux`` is installed, or already imported.

    *Delete when:* MMagic imports ``controlnet_aux`` lazily, or the recipe installs it.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

__all__ = ['apply', 'controlnet_aux_stand_in_needed', 'mmcv_ops_stub_needed', 'MMCV_OPS_ERROR',
           'STAND_INS']

MMCV_OPS_ERROR = (
    'mmcv.ops.{name} needs mmcv built with compiled ops (mmcv._ext), but '
    'this environment has mmcv without them (e.g. mmcv-lite), so '
    'hidiff_mm.compat serves a stand-in mmcv.ops that only lets mmagic '
    'import. Install full mmcv==2.1.0 built from source to use this op '
    '(see docs/install.md).')

#: Module -> the names its stand-in answers: what MMagic 1.2.0's editors import from mmcv.ops
#: without an ``except ImportError`` (TDAN; EDVR and BasicVSR++; StyleGAN1/2), and what
#: ``mmcv.utils.collect_env()`` asks for.
STAND_INS = {
    'mmcv.ops': ('DeformConv2d', 'DeformConv2dPack', 'deform_conv2d', 'ModulatedDeformConv2d',
                 'modulated_deform_conv2d', 'get_compiler_version',
                 'get_compiling_cuda_version'),
    'mmcv.ops.fused_bias_leakyrelu': ('FusedBiasLeakyReLU', 'fused_bias_leakyrelu'),
    'mmcv.ops.upfirdn2d': ('upfirdn2d', ),
}

_VERSION_ANSWER = 'n/a (mmcv.ops stand-in, no _ext)'
_VERSION_FUNCTIONS = ('get_compiler_version', 'get_compiling_cuda_version')

_APPLIED = False


def apply() -> None:
    """Install the ``mmcv.ops`` stand-in if this environment needs it.

    Safe to call any number of times; only the first call does work.
    """
    global _APPLIED
    if _APPLIED:
        return
    _install_mmcv_ops_stub()
    _install_controlnet_aux_stand_in()
    _APPLIED = True


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


class _StubModule(type(sys)):
    """A stand-in ``mmcv.ops`` (sub)module; see :data:`MMCV_OPS_ERROR`."""

    def __getattr__(self, name):
        if name.startswith('_') or name not in STAND_INS.get(self.__name__, ()):
            raise AttributeError(
                f'{self.__name__}.{name} is not available: hidiff_mm.compat serves a stand-in '
                f'{self.__name__} that answers only {", ".join(STAND_INS[self.__name__])}')
        if name in _VERSION_FUNCTIONS:
            value = _version_answer
        else:
            value = _placeholder(self.__name__, name)
        setattr(self, name, value)
        return value


def _version_answer():
    """What the stand-in's ``get_compiler_version()`` / ``get_compiling_cuda_version()`` say."""
    return _VERSION_ANSWER


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
    """Serves the modules of :data:`STAND_INS` as :class:`_StubModule`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in STAND_INS:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == 'mmcv.ops')

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        if module.__name__ == 'mmcv.ops':
            module.__path__ = []
        module.__all__ = list(STAND_INS[module.__name__])


def _install_mmcv_ops_stub():
    if any(isinstance(f, _MMCVOpsStubFinder) for f in sys.meta_path):
        return
    if mmcv_ops_stub_needed():
        sys.meta_path.insert(0, _MMCVOpsStubFinder())


CONTROLNET_AUX_ERROR = (
    'controlnet_aux.{name} is not installed: hidiff_mm.compat serves a stand-in controlnet_aux '
    'so that mmagic.apis imports. pip install controlnet-aux to use MMagic\'s ControlNet '
    'animation inferencer.')


def controlnet_aux_stand_in_needed() -> bool:
    """Whether ``controlnet_aux`` is neither installed nor imported."""
    if 'controlnet_aux' in sys.modules:
        return isinstance(sys.modules['controlnet_aux'], _ControlnetAuxModule)
    return importlib.machinery.PathFinder.find_spec('controlnet_aux') is None


class _ControlnetAuxModule(type(sys)):
    """The stand-in ``controlnet_aux``: ``HEDdetector`` only."""

    def __getattr__(self, name):
        if name != 'HEDdetector':
            raise AttributeError(f'controlnet_aux.{name} is not available: hidiff_mm.compat '
                                 'serves a stand-in controlnet_aux that answers only HEDdetector')
        value = type(name, (), {
            '__init__': _raise_controlnet_aux(name),
            'from_pretrained': classmethod(_raise_controlnet_aux(name)),
            '__module__': 'controlnet_aux',
            '__doc__': f'Stand-in for controlnet_aux.{name}; raises when used.',
        })
        setattr(self, name, value)
        return value


def _raise_controlnet_aux(name):
    def unavailable(*args, **kwargs):
        raise RuntimeError(CONTROLNET_AUX_ERROR.format(name=name))
    return unavailable


class _ControlnetAuxFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``controlnet_aux`` as :class:`_ControlnetAuxModule`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'controlnet_aux':
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return _ControlnetAuxModule(spec.name)

    def exec_module(self, module):
        module.__all__ = ['HEDdetector']


def _install_controlnet_aux_stand_in():
    if any(isinstance(f, _ControlnetAuxFinder) for f in sys.meta_path):
        return
    if controlnet_aux_stand_in_needed():
        sys.meta_path.append(_ControlnetAuxFinder())
