# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Tests of hidiff_mm.compat (the mmcv.ops stand-in) and of the scoped allow-list for MMEngine
checkpoints (hidiff_mm.utils.checkpoint_globals, hidiff_mm.engine.runner)."""
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from hidiff_mm import compat
from hidiff_mm.engine import CheckpointGlobalsMixin, WeightsOnlyRunner, build_runner
from hidiff_mm.utils import checkpoint_globals
from hidiff_mm.utils.checkpoint_globals import mmengine_checkpoint_globals
from hidiff_mm.utils.errors import ConfigError

FULL_MMCV = compat._mmcv_ext_present()
needs_stand_in = pytest.mark.skipif(FULL_MMCV, reason='full mmcv with compiled ops is installed')


def test_apply_is_idempotent():
    import hidiff_mm
    assert hidiff_mm.compat is compat is sys.modules['hidiff_mm.compat']  # one module object
    compat.apply()
    compat.apply()
    names = [type(f).__name__ for f in sys.meta_path]
    assert names.count('_MMCVOpsStubFinder') == (0 if FULL_MMCV else 1)


# ---------------------------------------------------------------- mmcv.ops stand-in
def test_mmagic_models_and_evaluation_import():
    import mmagic.evaluation  # noqa: F401
    import mmagic.models  # noqa: F401
    from mmagic.registry import METRICS, MODELS
    assert MODELS.get('BaseEditModel') is not None
    for metric in ('PSNR', 'SSIM', 'MAE', 'NIQE'):
        assert METRICS.get(metric) is not None


@needs_stand_in
def test_mmcv_ops_stand_in_raises_on_use():
    import mmcv.ops
    from mmcv.ops import ModulatedDeformConv2d, deform_conv2d
    from mmcv.ops.upfirdn2d import upfirdn2d
    from mmengine.utils.dl_utils import mmcv_full_available

    assert isinstance(mmcv.ops, compat._StubModule)
    assert issubclass(ModulatedDeformConv2d, nn.Module)
    with pytest.raises(RuntimeError, match=r'mmcv\.ops\.ModulatedDeformConv2d needs mmcv built'):
        ModulatedDeformConv2d(3, 3, 3)

    class Subclass(ModulatedDeformConv2d):  # mmagic's EDVR subclasses it at import time

        def __init__(self):
            super().__init__(3, 3, 3)

    with pytest.raises(RuntimeError, match='ModulatedDeformConv2d'):
        Subclass()
    with pytest.raises(RuntimeError, match=r'mmcv\.ops\.deform_conv2d needs'):
        deform_conv2d(torch.rand(1, 1, 4, 4), torch.rand(1, 18, 4, 4), torch.rand(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match='upfirdn2d'):
        upfirdn2d(torch.rand(1, 1, 4, 4), torch.ones(1, 1))
    assert mmcv.ops.deform_conv2d is deform_conv2d  # one placeholder per name
    assert mmcv.ops.get_compiler_version().startswith('n/a')  # mmcv.utils.collect_env() works
    assert not mmcv_full_available()  # mmcv._ext is not faked: mmengine keeps its lite paths


@needs_stand_in
@pytest.mark.parametrize('name', ['nms', 'RoIAlign', 'bias_act', 'conv2d', '__wrapped__'])
def test_mmcv_ops_stand_in_refuses_other_names(name):
    import mmcv.ops
    assert not hasattr(mmcv.ops, name)
    with pytest.raises(ImportError):
        exec(f'from mmcv.ops import {name}', {})
    if not name.startswith('_'):
        with pytest.raises(AttributeError, match=f'mmcv.ops.{name} is not available'):
            getattr(mmcv.ops, name)


@needs_stand_in
@pytest.mark.parametrize('module', ['mmcv.ops.nms', 'mmcv.ops.deform_conv', 'mmcv.ops.foo.bar'])
def test_mmcv_ops_stand_in_serves_no_other_submodule(module):
    with pytest.raises(ModuleNotFoundError):
        __import__(module)


@needs_stand_in
def test_mmagic_fallbacks_take_their_pure_pytorch_paths():
    """MMagic's ``try: from mmcv.ops import ... except ImportError`` now takes its fallback
    instead of binding a placeholder that would fail at call time."""
    from mmagic.models.editors.stylegan2 import stylegan2_modules
    from mmagic.models.editors.stylegan3 import stylegan3_modules
    assert stylegan2_modules.conv2d is torch.nn.functional.conv2d
    assert stylegan2_modules.conv_transpose2d is torch.nn.functional.conv_transpose2d
    assert stylegan3_modules.bias_act is None and stylegan3_modules.filtered_lrelu is None


def test_mmcv_ops_stand_in_steps_aside_with_compiled_ops(monkeypatch):
    monkeypatch.delitem(sys.modules, 'mmcv.ops', raising=False)
    monkeypatch.setattr(compat, '_mmcv_ext_present', lambda: True)
    assert compat.mmcv_ops_stub_needed() is False
    monkeypatch.setattr(compat, '_mmcv_ext_present', lambda: False)
    assert compat.mmcv_ops_stub_needed() is True
    monkeypatch.setattr(compat, '_mmcv_dir', lambda: None)  # mmcv not installed at all
    assert compat.mmcv_ops_stub_needed() is False


def test_mmcv_ext_probe(monkeypatch, tmp_path):
    monkeypatch.setattr(compat, '_mmcv_dir', lambda: str(tmp_path))
    assert compat._mmcv_ext_present() is False
    import importlib.machinery
    (tmp_path / ('_ext' + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b'')
    assert compat._mmcv_ext_present() is True


def test_real_mmcv_ops_module_is_kept(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmcv.ops', types.ModuleType('mmcv.ops'))
    assert compat.mmcv_ops_stub_needed() is False


def test_torchvision_ops_load_without_a_shim():
    """The pinned torch/torchvision pair loads torchvision's compiled ops: the schema shim that
    used to live in compat is not needed."""
    import torchvision
    from torchvision import extension
    assert extension._has_ops()
    keep = torchvision.ops.nms(torch.tensor([[0., 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([1., .5]),
                               .5)
    assert keep.tolist() == [0]


# ---------------------------------------------------------------- MMEngine checkpoints
class _TinyModel(BaseModel):

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class _TinyDataset(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


def _runner_cfg(work_dir, max_iters, **kwargs):
    return dict(
        model=kwargs.pop('model', None) or _TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_TinyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        default_scope='mmengine',
        experiment_name=f'compat_{work_dir.name}_{max_iters}',
        **kwargs)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """A real MMEngine training checkpoint: HistoryBuffer logs, numpy arrays and scalars."""
    work_dir = tmp_path_factory.mktemp('runner')
    Runner(**_runner_cfg(work_dir, max_iters=2)).train()
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    return ckpt


def test_runner_checkpoint_needs_the_allow_list(runner_checkpoint, no_safe_globals):
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(runner_checkpoint)


def test_runner_checkpoint_loads_in_the_scope_only(runner_checkpoint, no_safe_globals):
    with mmengine_checkpoint_globals():
        ckpt = torch.load(runner_checkpoint)  # torch >= 2.6: weights_only=True by default
        assert set(torch.load(runner_checkpoint, weights_only=True)) >= {
            'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}
    assert ckpt['meta']['iter'] == 2
    history = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert isinstance(history.data[0], np.ndarray)
    assert np.isfinite(history.mean())
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.generic)
    assert torch.serialization.get_safe_globals() == []
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(runner_checkpoint)


def test_scope_keeps_what_was_allowed_before(no_safe_globals):
    class Mine:
        pass

    own = list(checkpoint_globals.mmengine_safe_globals())
    torch.serialization.add_safe_globals([Mine, np.ndarray])  # np.ndarray is also on our list
    with mmengine_checkpoint_globals():
        with mmengine_checkpoint_globals():  # nested: adds nothing, removes nothing
            pass
        assert set(torch.serialization.get_safe_globals()) == set(own) | {Mine}
    assert set(torch.serialization.get_safe_globals()) == {Mine, np.ndarray}
    with pytest.raises(KeyError):
        with mmengine_checkpoint_globals():
            raise KeyError('the scope also closes on errors')
    assert set(torch.serialization.get_safe_globals()) == {Mine, np.ndarray}


def test_runner_resumes_and_loads_in_its_scope(runner_checkpoint, tmp_path, no_safe_globals):
    runner = WeightsOnlyRunner(
        **_runner_cfg(tmp_path, max_iters=3, resume=True, load_from=str(runner_checkpoint)))
    runner.train()
    assert runner.iter == 3
    assert torch.serialization.get_safe_globals() == []
    loaded = _TinyModel()
    runner.model, model = loaded, runner.model
    runner.load_checkpoint(str(tmp_path / 'iter_3.pth'))  # load_from, as tools/test.py does
    assert torch.equal(loaded.linear.weight, model.linear.weight)


def test_plain_runner_refuses_its_own_checkpoint(runner_checkpoint, tmp_path, no_safe_globals):
    """Why the runner needs the mixin: MMEngine 0.10.7 alone cannot resume under torch 2.14."""
    runner = Runner(**_runner_cfg(tmp_path, max_iters=3, resume=True,
                                  load_from=str(runner_checkpoint)))
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        runner.train()


def test_pretrained_init_cfg_loads_in_the_runner_scope(runner_checkpoint, tmp_path,
                                                       no_safe_globals):
    with mmengine_checkpoint_globals():
        expected = torch.load(runner_checkpoint)['state_dict']['linear.weight']
    for runner_cls in (WeightsOnlyRunner, Runner):
        model = _TinyModel(init_cfg=dict(type='Pretrained', checkpoint=str(runner_checkpoint)))
        runner = runner_cls(**_runner_cfg(tmp_path / runner_cls.__name__, max_iters=1,
                                          model=model))
        if runner_cls is WeightsOnlyRunner:
            runner._init_model_weights()  # what Runner.train() calls before the first iteration
            assert torch.equal(model.linear.weight, expected)
        else:
            with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
                runner._init_model_weights()


def test_build_runner_classes(monkeypatch):
    """tools/train.py and tools/test.py build their runner with ``build_runner``, which adds a
    ``FastPathHook`` unless the config has one."""
    from mmagic.registry import RUNNERS

    from hidiff_mm.engine.hooks import FastPathHook

    class OwnRunner(Runner):
        pass

    class Built:
        """What ``from_cfg`` built: the class, and the hooks registered on it."""

        def __init__(self, cls, hooks):
            self.cls, self.hooks = cls, list(hooks)

        def register_hook(self, hook):
            self.hooks.append(hook)

    monkeypatch.setattr(Runner, 'from_cfg', classmethod(
        lambda cls, cfg: Built(cls, [FastPathHook()] * cfg.get('own_hook', 0))))
    monkeypatch.setitem(RUNNERS.module_dict, 'OwnRunner', OwnRunner)
    runner = build_runner(Config(dict()))
    assert runner.cls is WeightsOnlyRunner and [type(h) for h in runner.hooks] == [FastPathHook]
    assert len(build_runner(Config(dict(own_hook=1))).hooks) == 1
    assert build_runner(Config(dict(runner_type='WeightsOnlyRunner'))).cls is WeightsOnlyRunner
    mixed = build_runner(Config(dict(runner_type='OwnRunner'))).cls
    assert issubclass(mixed, OwnRunner) and issubclass(mixed, CheckpointGlobalsMixin)
    with pytest.raises(ConfigError, match='NoSuchRunner'):
        build_runner(Config(dict(runner_type='NoSuchRunner')))


class _Payload:

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('payload', ['os.system', 'eval', 'getattr'])
def test_malicious_pickles_are_refused_in_the_scope(payload, tmp_path, no_safe_globals):
    marker = tmp_path / 'pwned'
    command = f'touch {marker}'
    obj = {
        'os.system': _Payload(os.system, command),
        'eval': _Payload(eval, f'__import__("os").system({command!r})'),
        # getattr is mapped to a function that only serves HistoryBuffer.{min,max,...}
        'getattr': _Payload(getattr, HistoryBuffer, 'update'),
    }[payload]
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': obj}, path)
    with mmengine_checkpoint_globals():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
    assert not marker.exists()


def test_history_buffer_getattr_is_restricted():
    getattr_ = checkpoint_globals._history_buffer_getattr
    assert getattr_(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, '__class__'),
                      (np.ndarray, 'tofile'), (os, 'system')]:
        with pytest.raises(pickle.UnpicklingError):
            getattr_(obj, name)


def test_allow_list_is_exact():
    entries = checkpoint_globals.mmengine_safe_globals()
    names = set()
    for entry in entries:
        obj, name = entry if isinstance(entry, tuple) else (entry, None)
        names.add(name or f'{obj.__module__}.{obj.__qualname__}')
    # builtins.getattr is served by the restricted function, never by the real getattr
    assert (checkpoint_globals._history_buffer_getattr, 'builtins.getattr') in entries
    assert getattr not in [e[0] if isinstance(e, tuple) else e for e in entries]
    non_dtype = {n for n in names if not n.startswith('numpy.dtypes.')
                 and not n.startswith('numpy.dtype[')}
    assert non_dtype == {
        'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr', 'numpy.ndarray',
        'numpy.dtype', '_codecs.encode', 'numpy.core.multiarray._reconstruct',
        'numpy._core.multiarray._reconstruct', 'numpy.core.multiarray.scalar',
        'numpy._core.multiarray.scalar'
    }
