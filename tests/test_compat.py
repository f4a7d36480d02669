# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Tests of hidiff_mm.compat: each piece acts when its condition holds and steps aside otherwise."""
import os
import pickle
import subprocess
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

FULL_MMCV = compat._mmcv_ext_present()


def test_apply_is_idempotent():
    import hidiff_mm
    assert hidiff_mm.compat is compat is sys.modules['hidiff_mm.compat']  # one module object
    compat.apply()
    compat.apply()
    names = [type(f).__name__ for f in sys.meta_path]
    assert names.count('_MMCVOpsStubFinder') == (0 if FULL_MMCV else 1)
    assert names.count('_TorchvisionHook') <= 1


# ---------------------------------------------------------------- (a) mmcv.ops stand-in
def test_mmagic_models_and_evaluation_import():
    import mmagic.evaluation  # noqa: F401
    import mmagic.models  # noqa: F401
    from mmagic.registry import METRICS, MODELS
    assert MODELS.get('BaseEditModel') is not None
    for metric in ('PSNR', 'SSIM', 'MAE', 'NIQE'):
        assert METRICS.get(metric) is not None


@pytest.mark.skipif(FULL_MMCV, reason='full mmcv with compiled ops is installed')
def test_mmcv_ops_stand_in_raises_on_use():
    import mmcv.ops
    from mmcv.ops import ModulatedDeformConv2d, nms
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
    with pytest.raises(RuntimeError, match=r'mmcv\.ops\.nms needs'):
        nms(torch.rand(2, 4), torch.rand(2), 0.5)
    with pytest.raises(RuntimeError, match='upfirdn2d'):
        upfirdn2d(torch.rand(1, 1, 4, 4), torch.ones(1, 1))
    assert mmcv.ops.nms is nms  # one placeholder per name
    assert isinstance(mmcv.ops.get_compiler_version(), str)  # mmcv.utils.collect_env() works
    with pytest.raises(AttributeError):
        mmcv.ops.__wrapped__
    assert not mmcv_full_available()  # mmcv._ext is not faked: mmengine keeps its lite paths


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


# ---------------------------------------------------------------- (b) weights_only loading
class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
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


def _runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=_TinyModel(),
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
    _runner(work_dir, max_iters=2).train()
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    return ckpt


def test_runner_checkpoint_needs_the_allow_list(runner_checkpoint):
    saved = torch.serialization.get_safe_globals()
    try:
        torch.serialization.clear_safe_globals()
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(runner_checkpoint)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def test_runner_checkpoint_loads_with_weights_only(runner_checkpoint):
    ckpt = torch.load(runner_checkpoint)  # torch >= 2.6: weights_only=True by default
    assert ckpt['meta']['iter'] == 2
    history = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert isinstance(history.data[0], np.ndarray)
    assert np.isfinite(history.mean())
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.generic)
    ckpt = torch.load(runner_checkpoint, weights_only=True)  # the explicit form too
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}


def test_runner_resume_and_load_checkpoint(runner_checkpoint, tmp_path):
    from mmengine.runner import load_checkpoint
    model = _TinyModel()
    load_checkpoint(model, str(runner_checkpoint), map_location='cpu')

    runner = _runner(tmp_path, max_iters=3, resume=True, load_from=str(runner_checkpoint))
    runner.train()
    assert runner.iter == 3
    assert torch.load(tmp_path / 'iter_3.pth')['meta']['iter'] == 3


class _Payload:

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('payload', ['os.system', 'eval', 'getattr'])
def test_malicious_pickles_are_refused(payload, tmp_path):
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
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_history_buffer_getattr_is_restricted():
    assert compat._history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, '__class__'),
                      (np.ndarray, 'tofile'), (os, 'system')]:
        with pytest.raises(pickle.UnpicklingError):
            compat._history_buffer_getattr(obj, name)


def test_allow_list_is_exact():
    entries = compat.mmengine_safe_globals()
    names = set()
    for entry in entries:
        obj, name = entry if isinstance(entry, tuple) else (entry, None)
        names.add(name or f'{obj.__module__}.{obj.__qualname__}')
    # builtins.getattr is served by the restricted function, never by the real getattr
    assert (compat._history_buffer_getattr, 'builtins.getattr') in entries
    assert getattr not in [e[0] if isinstance(e, tuple) else e for e in entries]
    non_dtype = {n for n in names if not n.startswith('numpy.dtypes.')
                 and not n.startswith('numpy.dtype[')}
    assert non_dtype == {
        'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr', 'numpy.ndarray',
        'numpy.dtype', '_codecs.encode', 'numpy.core.multiarray._reconstruct',
        'numpy._core.multiarray._reconstruct', 'numpy.core.multiarray.scalar',
        'numpy._core.multiarray.scalar'
    }


# ---------------------------------------------------------------- (c) np.bool8
def test_numpy_bool8_alias_only_on_numpy2(monkeypatch):
    had_bool8 = 'bool8' in vars(np)
    monkeypatch.setattr(np, '__version__', '1.26.4')
    compat._alias_numpy_bool8()
    assert ('bool8' in vars(np)) == had_bool8
    monkeypatch.setattr(np, '__version__', '2.1.0')
    try:
        compat._alias_numpy_bool8()
        assert vars(np)['bool8'] is np.bool_
    finally:
        if not had_bool8:
            del np.bool8


# ---------------------------------------------------------------- (d) torchvision schemas
def _fake_extension(has_ops, initializing=False):
    ext = types.ModuleType('torchvision.extension')
    ext._has_ops = lambda: has_ops
    ext.__spec__ = types.SimpleNamespace(_initializing=initializing)
    return ext


@pytest.mark.parametrize('has_ops,missing,defined', [(False, True, True), (True, True, False),
                                                     (False, False, False)])
def test_torchvision_hook(monkeypatch, has_ops, missing, defined):
    calls = []
    monkeypatch.setattr(compat, '_define_torchvision_schemas', lambda: calls.append(1))
    monkeypatch.setattr(compat, '_torchvision_schemas_missing', lambda: missing)
    hook = compat._TorchvisionHook()
    monkeypatch.setattr(sys, 'meta_path', [hook] + sys.meta_path)

    monkeypatch.setitem(sys.modules, 'torchvision.extension', _fake_extension(has_ops, True))
    assert hook.find_spec('torchvision._internally_replaced_utils') is None
    assert hook in sys.meta_path and not calls  # extension still executing: wait

    monkeypatch.setitem(sys.modules, 'torchvision.extension', _fake_extension(has_ops))
    assert hook.find_spec('torchvision._meta_registrations') is None
    assert hook not in sys.meta_path
    assert calls == ([1] if defined else [])


def test_torchvision_imports_with_its_own_ops():
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("c", {compat.__file__!r})\n'
            'c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)\n'
            'c._install_torchvision_schema_hook()\n'
            'import torch, torchvision\n'
            'from torchvision.utils import make_grid\n'
            'assert not any(isinstance(f, c._TorchvisionHook) for f in sys.meta_path)\n'
            'assert c._torchvision_lib is None\n'
            'keep = torchvision.ops.nms(torch.tensor([[0., 0, 1, 1], [0, 0, 1, 1]]),\n'
            '                           torch.tensor([1., .5]), .5)\n'
            'assert keep.tolist() == [0], keep\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


# ---------------------------------------------------------------- (e) CPU distributed
def test_setup_cpu_distributed_without_launcher():
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel')))
    assert compat.setup_cpu_distributed(cfg, 'none') is False
    assert 'device_ids' not in cfg.model_wrapper_cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
@pytest.mark.parametrize('wrapper', [None, dict(type='MMSeparateDistributedDataParallel',
                                                broadcast_buffers=True)])
def test_setup_cpu_distributed_with_launcher(monkeypatch, wrapper):
    import torch.distributed as dist
    backends = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend: backends.append(backend))
    cfg = Config(dict(find_unused_parameters=True))
    if wrapper is not None:
        cfg.model_wrapper_cfg = wrapper
    assert compat.setup_cpu_distributed(cfg, 'pytorch') is True
    assert backends == ['gloo']
    expected = dict(type='MMDistributedDataParallel', broadcast_buffers=False)
    if wrapper is not None:
        expected = dict(wrapper)
    expected.update(device_ids=None, find_unused_parameters=True)
    assert cfg.model_wrapper_cfg == expected
