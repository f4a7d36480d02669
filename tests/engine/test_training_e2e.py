"""End-to-end training: S1 -> S2 in one run, exact resume after SIGKILL, 1 vs 2 processes."""
import os.path as osp
import signal
import socket

import pytest
import torch
from engine_utils import run_tool
from tiny_config import write_config


def weights(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize('kill,workers', [(3, 0), (6, 2)])
def test_resume_after_sigkill_equals_uninterrupted_run(tiny_data, tmp_path, kill, workers):
    full_dir, crash_dir = str(tmp_path / 'full'), str(tmp_path / 'crash')
    full = write_config(str(tmp_path / 'full.py'), tiny_data, full_dir, workers=workers)
    run_tool(['tools/train.py', full])

    crash = write_config(str(tmp_path / 'crash.py'), tiny_data, crash_dir, kill=kill,
                         workers=workers)
    proc = run_tool(['tools/train.py', crash], check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert osp.exists(osp.join(crash_dir, f'iter_{kill}.pth'))
    assert not osp.exists(osp.join(crash_dir, f'iter_{kill + 1}.pth'))

    resumed = write_config(str(tmp_path / 'resume.py'), tiny_data, crash_dir, workers=workers)
    run_tool(['tools/train.py', resumed, '--resume'])

    final = torch.load(osp.join(crash_dir, 'iter_8.pth'), map_location='cpu', weights_only=True)
    assert final['meta']['hidiff_stage'] == 2
    assert max_diff(final['state_dict'], weights(osp.join(full_dir, 'iter_8.pth'))) <= 1e-6
    # the stage-1 encoder was frozen in stage 2, the denoiser trained
    s4, s8 = weights(osp.join(full_dir, 'iter_4.pth')), final['state_dict']
    enc1 = [k for k in s8 if k.startswith('prior_head.encoder_s1.')]
    den = [k for k in s8 if k.startswith('prior_head.denoiser.')]
    assert all(torch.equal(s4[k], s8[k]) for k in enc1)
    assert any(not torch.equal(s4[k], s8[k]) for k in den)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_one_process_same_global_batch(tiny_data, tmp_path):
    """Every rank draws from its own stream (seed + rank), so the runs can only be equal where
    training draws nothing: stage 1 (no diffusion noise) without random augmentation."""
    one_dir, two_dir = str(tmp_path / 'one'), str(tmp_path / 'two')
    one = write_config(str(tmp_path / 'one.py'), tiny_data, one_dir, iters=3, switch=100,
                       batch=4, augment=False, val_interval=100)
    two = write_config(str(tmp_path / 'two.py'), tiny_data, two_dir, iters=3, switch=100,
                       batch=2, augment=False, val_interval=100)
    run_tool(['tools/train.py', one])
    run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
              'tools/train.py', two, '--launcher', 'pytorch'], timeout=400)
    for it in (1, 2, 3):
        diff = max_diff(weights(osp.join(one_dir, f'iter_{it}.pth')),
                        weights(osp.join(two_dir, f'iter_{it}.pth')))
        assert diff <= 1e-5, f'iteration {it}: max weight difference {diff}'


def test_two_process_gloo_run_switches_stage(tiny_data, tmp_path):
    """The stage switch rebuilds the DDP wrapper for the stage-2 parameters."""
    work_dir = str(tmp_path / 'dist_switch')
    config = write_config(str(tmp_path / 'dist_switch.py'), tiny_data, work_dir, iters=4,
                          switch=2, batch=2, val_interval=4)
    run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
              'tools/train.py', config, '--launcher', 'pytorch'], timeout=400)
    s2 = torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu', weights_only=True)
    s4 = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    assert s2['meta']['hidiff_stage'] == 1 and s4['meta']['hidiff_stage'] == 2
    ranks = s4['meta']['rng_states']
    assert len(ranks) == 2  # one per rank, each its own stream (seed + rank, as officially)
    assert not torch.equal(ranks[0]['torch'], ranks[1]['torch'])
    assert not torch.equal(ranks[0]['numpy'], ranks[1]['numpy'])
    changed = [k for k in s4['state_dict']
               if not torch.equal(s2['state_dict'][k], s4['state_dict'][k])]
    assert any(k.startswith('prior_head.denoiser.') for k in changed)
    assert not any(k.startswith('prior_head.encoder_s1.') for k in changed)
