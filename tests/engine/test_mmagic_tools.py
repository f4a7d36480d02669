# Copyright (c) hidiff_mm contributors. All rights reserved.
"""MMagic's own installed tools (``<mmagic>/.mim/tools/train.py``, ``test.py``) on HI-Diff.

They reach hidiff_mm only through the config's ``custom_imports`` and build MMEngine's plain
``Runner``; torch >= 2.6 loads weights-only, so resuming, ``load_from`` and testing depend on
the allow-list that ``import hidiff_mm`` adds (hidiff_mm.utils.checkpoint_globals).
"""
import json
import os
import os.path as osp
import signal

import mmagic
import numpy as np
import pytest
import torch
from engine_utils import REPO, run_tool
from test_training_e2e import max_diff, weights
from tiny_config import write_config

MMAGIC_TOOLS = osp.join(osp.dirname(mmagic.__file__), '.mim', 'tools')
DEMO_CONFIG = osp.join(REPO, 'configs', 'hidiff_demo_shake.py')
DEMO_WEIGHTS = osp.join(REPO, 'demo_model', 'hidiff_demo_shake.pth')
PREFIX = {'net_g': 'generator.', 'net_le': 'prior_head.encoder_s1.',
          'net_le_dm': 'prior_head.encoder_s2.', 'net_d': 'prior_head.denoiser.'}


def mmagic_tool(name: str, *args: str, check: bool = True, cwd: str = REPO):
    return run_tool([osp.join(MMAGIC_TOOLS, name), *args], check=check, cwd=cwd)


@pytest.fixture(scope='module')
def runs(tiny_data, tmp_path_factory):
    """An uninterrupted 8-iteration run by the project's tools/train.py, and the same run by
    MMagic's train.py killed (SIGKILL) after iteration 3 and resumed with its ``--resume``."""
    root = tmp_path_factory.mktemp('mmagic_tools')
    full_dir, crash_dir = str(root / 'full'), str(root / 'crash')
    full = write_config(str(root / 'full.py'), tiny_data, full_dir)
    run_tool(['tools/train.py', full])
    crash = write_config(str(root / 'crash.py'), tiny_data, crash_dir, kill=3)
    proc = mmagic_tool('train.py', crash, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not osp.exists(osp.join(crash_dir, 'iter_4.pth'))
    resume = write_config(str(root / 'resume.py'), tiny_data, crash_dir)
    log = mmagic_tool('train.py', resume, '--resume').stdout
    return dict(root=root, full_dir=full_dir, crash_dir=crash_dir, config=resume, log=log)


def test_mmagic_resume_equals_uninterrupted_run(runs):
    assert 'resumed epoch: 0, iter: 3' in runs['log']
    final = torch.load(osp.join(runs['crash_dir'], 'iter_8.pth'), weights_only=True)
    assert final['meta']['hidiff_stage'] == 2  # crossed the stage switch after resuming
    assert max_diff(final['state_dict'], weights(osp.join(runs['full_dir'], 'iter_8.pth'))) <= 1e-6


def test_mmagic_load_from(runs, tiny_data):
    work_dir = str(runs['root'] / 'load_from')
    config = write_config(str(runs['root'] / 'load_from.py'), tiny_data, work_dir, iters=1)
    source = osp.join(runs['crash_dir'], 'iter_8.pth')
    log = mmagic_tool('train.py', config, '--cfg-options', f'load_from={source}').stdout
    assert f'Load checkpoint from {source}' in log
    assert torch.load(osp.join(work_dir, 'iter_1.pth'), weights_only=True)['meta']['iter'] == 1


def official_files(checkpoint: str, out_dir) -> list:
    """Split an editor checkpoint into official BasicSR files (``{'params': ...}``)."""
    state = weights(checkpoint)
    paths = []
    for role, prefix in PREFIX.items():
        path = str(out_dir / f'{role}.pth')
        torch.save({'params': {k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)}}, path)
        paths.append(path)
    return paths


@pytest.mark.parametrize('source', ['project', 'converted'])
def test_mmagic_test_prints_metrics(runs, tmp_path, source):
    """MMagic's test.py on a checkpoint of the project's tools/train.py and on one written by
    tools/convert_official_checkpoint.py (MMagic's train.py wrote the one ``--resume`` read)."""
    ckpt = osp.join(runs['full_dir'], 'iter_8.pth')
    if source == 'converted':
        ckpt = str(tmp_path / 'converted.pth')
        run_tool(['tools/convert_official_checkpoint.py',
                  *official_files(osp.join(runs['full_dir'], 'iter_8.pth'), tmp_path),
                  '--out', ckpt, '--config', runs['config']])
    out = str(tmp_path / 'metrics.json')
    log = mmagic_tool('test.py', runs['config'], ckpt, '--work-dir', str(tmp_path / 'w'),
                      '--out', out).stdout
    metrics = json.loads(open(out).read())
    assert set(metrics) >= {'PSNR', 'SSIM', 'blurry_input/PSNR'}
    assert all(np.isfinite(v) for v in metrics.values())
    assert f"PSNR: {metrics['PSNR']:.4f}" in log  # printed, not only written


def test_mmagic_test_reads_the_demo_model(tiny_data, tmp_path):
    log = mmagic_tool('test.py', DEMO_CONFIG, DEMO_WEIGHTS, '--work-dir', str(tmp_path),
                      '--cfg-options', f'test_dataloader.dataset.data_root={tiny_data}/test',
                      'test_dataloader.num_workers=0', cwd=str(tmp_path)).stdout
    assert f'Load checkpoint from {DEMO_WEIGHTS}' in log
    assert 'do not match exactly' not in log  # every weight found its parameter
    assert np.isfinite(float(log.split('PSNR: ')[1].split()[0]))


class _Payload:

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return os.system, self.args


def test_mmagic_test_refuses_a_malicious_checkpoint(runs, tmp_path):
    marker = tmp_path / 'pwned'
    evil = str(tmp_path / 'evil.pth')
    state = weights(osp.join(runs['full_dir'], 'iter_8.pth'))
    torch.save({'state_dict': state, 'meta': _Payload(f'touch {marker}')}, evil)
    proc = mmagic_tool('test.py', runs['config'], evil, '--work-dir', str(tmp_path / 'w'),
                       check=False)
    assert proc.returncode != 0
    assert 'UnpicklingError' in proc.stderr and 'posix.system' in proc.stderr
    assert not marker.exists()
