# Copyright (c) hidiff_mm contributors. All rights reserved.
"""hidiff_mm.engine.launcher: gloo process groups and CPU DDP settings for multi-process runs
without CUDA (the 2-process runs of test_training_e2e.py use it for real)."""
import os

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from hidiff_mm.engine.launcher import setup_cpu_distributed, teardown_distributed


def test_setup_cpu_distributed_without_launcher():
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel')))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert 'device_ids' not in cfg.model_wrapper_cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
@pytest.mark.parametrize('wrapper', [None, dict(type='MMSeparateDistributedDataParallel',
                                                broadcast_buffers=True)])
def test_setup_cpu_distributed_with_launcher(monkeypatch, wrapper):
    backends = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend: backends.append(backend))
    cfg = Config(dict(find_unused_parameters=True))
    if wrapper is not None:
        cfg.model_wrapper_cfg = wrapper
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert backends == ['gloo']
    expected = dict(type='MMDistributedDataParallel', broadcast_buffers=False)
    if wrapper is not None:
        expected = dict(wrapper)
    expected.update(device_ids=None, find_unused_parameters=True)
    assert cfg.model_wrapper_cfg == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_slurm_variables_become_torch_env(monkeypatch):
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend: None)
    # a process started by srun: SLURM's variables, none of torch's (MASTER_ADDR, else scontrol
    # is asked)
    env = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', MASTER_ADDR='node0')
    monkeypatch.setattr(os, 'environ', env)
    assert setup_cpu_distributed(Config(dict()), 'slurm') is True
    assert [env[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')] == [
        '3', '4', '1', '29500']


def test_teardown_without_a_process_group():
    assert not dist.is_initialized()
    teardown_distributed()  # nothing to tear down: no error
