# Copyright (c) hidiff_mm contributors. All rights reserved.
"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh on CPU.

The model is MMagic's own ``BaseEditModel`` with a tiny ``SRCNNNet`` at scale 1, the data are a
few 16x16 PNG pairs written by the test, and the config inherits MMagic's default runtime through
``mmagic::`` (which also checks that mmengine can resolve installed MMagic configs).
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180

CONFIG = """
_base_ = 'mmagic::_base_/default_runtime.py'

work_dir = None
model = dict(
    type='BaseEditModel',
    generator=dict(type='SRCNNNet', channels=(3, 4, 2, 3), kernel_sizes=(3, 1, 3),
                   upscale_factor=1),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

pipeline = [
    dict(type='LoadImageFromFile', key='img', color_type='color', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),
    dict(type='PackInputs'),
]
dataset = dict(type='BasicImageDataset', data_root={data_root!r},
               data_prefix=dict(img='input', gt='target'), pipeline=pipeline,
               metainfo=dict(dataset_type='toy', task_name='deblurring'))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True), dataset=dataset)
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
test_dataloader = val_dataloader
val_evaluator = dict(type='Evaluator', metrics=[dict(type='PSNR'), dict(type='MAE')])
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=2)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')
optim_wrapper = dict(constructor='DefaultOptimWrapperConstructor', type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = dict(type='MultiStepLR', by_epoch=False, milestones=[3], gamma=0.5)

default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, out_dir=None, max_keep_ckpts=-1))
custom_hooks = []
randomness = dict(seed=0)
"""


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    rng = np.random.default_rng(0)
    for sub in ('input', 'target'):
        (root / 'data' / sub).mkdir(parents=True)
    for i in range(4):
        sharp = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        blur = ((sharp.astype(np.float32) + np.roll(sharp, 1, axis=1)) / 2).astype(np.uint8)
        Image.fromarray(sharp).save(root / 'data' / 'target' / f'{i:03d}.png')
        Image.fromarray(blur).save(root / 'data' / 'input' / f'{i:03d}.png')
    path = root / 'toy_srcnn.py'
    path.write_text(CONFIG.format(data_root=str(root / 'data')))
    return path


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get('PYTHONPATH')]))
    return env


def _run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _train(config, work_dir, *extra):
    return _run([sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), str(config), '--work-dir',
                 str(work_dir), *extra], cwd=work_dir.parent)


def _meta(path):
    return torch.load(path, map_location='cpu')['meta']  # weights_only=True, via hidiff_mm.compat


@pytest.fixture(scope='module')
def trained(config, tmp_path_factory):
    """A 4-iteration single-process run (checkpoints every 2 iterations)."""
    work_dir = tmp_path_factory.mktemp('train') / 'work'
    _train(config, work_dir)
    return work_dir


def test_train_saves_checkpoints(trained):
    assert (trained / 'iter_2.pth').is_file()
    assert (trained / 'iter_4.pth').is_file()
    assert _meta(trained / 'iter_4.pth')['iter'] == 4
    assert list(trained.glob('best_PSNR_iter_*.pth'))
    assert (trained / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert not (trained.parent / 'work_dirs').exists()  # nothing written outside the work dir


def test_resume_continues_to_six_iterations(config, trained):
    log = _train(config, trained, '--resume', str(trained / 'iter_4.pth'), '--cfg-options',
                 'train_cfg.max_iters=6')
    assert 'resumed epoch: 0, iter: 4' in log
    assert (trained / 'iter_6.pth').is_file()
    assert _meta(trained / 'iter_6.pth')['iter'] == 6
    assert (trained / 'last_checkpoint').read_text().strip().endswith('iter_6.pth')


def test_resume_auto(config, trained):
    # --resume without a path picks the latest checkpoint of the work dir (iter 6 or iter 4,
    # depending on test order) and trains on to 8 iterations
    log = _train(config, trained, '--resume', '--cfg-options', 'train_cfg.max_iters=8')
    assert 'resumed epoch: 0, iter:' in log
    assert _meta(trained / 'iter_8.pth')['iter'] == 8


def test_test_script_writes_metrics(config, trained, tmp_path):
    out = tmp_path / 'metrics.json'
    _run([sys.executable, str(REPO_ROOT / 'tools' / 'test.py'), str(config),
          str(trained / 'iter_4.pth'), '--work-dir', str(tmp_path / 'test'), '--out', str(out)],
         cwd=tmp_path)
    metrics = json.loads(out.read_text())
    assert set(metrics) == {'PSNR', 'MAE'}
    assert all(np.isfinite(v) for v in metrics.values())


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_processes(config, tmp_path):
    work_dir = tmp_path / 'dist'
    env_port = dict(PORT=str(_free_port()))
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools' / 'dist_train.sh'), str(config), '2', '--work-dir',
         str(work_dir), '--cfg-options', 'train_cfg.max_iters=2'],
        cwd=tmp_path, env={**_env(), **env_port}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert _meta(work_dir / 'iter_2.pth')['iter'] == 2
    assert 'Distributed training: True' in proc.stdout
    assert 'GPU number: 2' in proc.stdout  # MMEngine's name for the world size
    if not torch.cuda.is_available():  # the CPU fixes of hidiff_mm.compat.setup_cpu_distributed
        dumped = (work_dir / config.name).read_text()
        assert 'device_ids=None' in dumped and 'broadcast_buffers=False' in dumped
