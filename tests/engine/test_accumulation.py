"""The recipe's total batch on any number of processes: ProgressivePatchHook plans gradient
accumulation per phase and AccumulatingIterBasedTrainLoop runs one optimizer step per iteration.

The proof (``test_accumulation_equals_two_processes_and_whole_batch``) trains the tiny
model with ``configs/hidiff_gopro.py``'s loop and hooks, over a phase change and the stage
switch, three ways that must give the same weights after every step:

* 1 process, micro-batches of 2 then 1 pairs, accumulated 2 then 4 times;
* 2 processes (gloo), 2 pairs each without accumulation, then 1 pair accumulated twice (DDP's
  ``no_sync`` until the last micro-batch);
* 1 process with the whole batch of 4 at once.

What makes them equal (to float rounding): the model has no BatchNorm (nothing couples the
samples of a micro-batch), the losses are means over equal micro-batches (so the mean of the k
micro-batch gradients is the whole batch's), the gradient is clipped and stepped once, after the
last micro-batch, and every variant sees the same samples, windows and noise: ``diff_rank_seed``
off, no random augmentation, the hook keeps every loaded pair, the progressive window is drawn
once per process from the same numpy stream, and the stage-2 start point is noise-free
(``noiseless_scheduler.py``: which sample gets which noise depends on the split).
"""
import os.path as osp
import runpy
import socket

import pytest
import torch
from engine_utils import REPO, run_tool
from tiny_config import TINY_MODEL

from hidiff_mm.engine import ProgressivePatchHook
from hidiff_mm.engine.accumulating_loop import mean_outputs, split_batch

RECIPE = dict(milestones=[20000, 40000, 60000, 80000, 100000, 300000],
              patch_sizes=[128, 160, 192, 256, 320, 384], batch_sizes=[8, 5, 4, 2, 1, 1],
              recipe_total_batch_sizes=[64, 40, 32, 16, 8, 8])  # as the configs write it


# ------------------------------------------------------------------------------ the plan
@pytest.mark.parametrize('world', [1, 2, 4, 8])
def test_recipe_is_reached_on_1_2_4_8_processes(world):
    plan = ProgressivePatchHook(**RECIPE).plan_for(world)
    assert [m for m, _ in plan] == RECIPE['batch_sizes']  # the 8-process memory per micro-batch
    assert [c for _, c in plan] == [8 // world] * 6
    assert [world * m * c for m, c in plan] == RECIPE['recipe_total_batch_sizes']


def test_plan_takes_the_fewest_equal_micro_batches_under_the_cap():
    hook = ProgressivePatchHook(**dict(RECIPE, batch_sizes=[16] * 6))
    # 40 pairs in micro-batches of at most 16: 3 does not divide 40, 4 x 10 does
    assert hook.plan_for(1) == [(16, 4), (10, 4), (16, 2), (16, 1), (8, 1), (8, 1)]
    assert hook.plan_for(3) is None and hook.plan_for(16) is None
    with pytest.raises(ValueError, match='positive'):
        ProgressivePatchHook(**dict(RECIPE, batch_sizes=[8, 5, 4, 2, 1, 0]))


def test_split_batch_and_mean_outputs():
    batch = dict(inputs=list(range(6)), data_samples=list('abcdef'))
    parts = split_batch(batch, 3)
    assert parts == [dict(inputs=[0, 1], data_samples=['a', 'b']),
                     dict(inputs=[2, 3], data_samples=['c', 'd']),
                     dict(inputs=[4, 5], data_samples=['e', 'f'])]
    assert split_batch(batch, 1)[0] is batch
    with pytest.raises(ValueError, match='6 samples cannot be split into 4'):
        split_batch(batch, 4)
    with pytest.raises(ValueError, match='differ in length'):
        split_batch(dict(inputs=[0, 1], data_samples=['a']), 2)
    means = mean_outputs([dict(loss=torch.tensor(1.)), dict(loss=torch.tensor(2.))])
    assert means['loss'].item() == 1.5


# ------------------------------------------------------------------------------ the proof
TEMPLATE = '''
_base_ = {base!r}
custom_imports = dict(imports=['hidiff_mm', 'noiseless_scheduler'], allow_failed_imports=False)
experiment_name = {name!r}
work_dir = {work_dir!r}
model = {model!r}
# the recipe's pipeline without its random crop and flips
train_pipeline = [{{{{_base_.load_pair}}}}, dict(type='SetValues', dictionary=dict(scale=1)),
                  dict(type='PackInputs')]
prefix = dict(img='input', gt='target')
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(data_root={data!r} + '/train', data_prefix=prefix, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, dataset=dict(data_root={data!r} + '/test', data_prefix=prefix))
train_cfg = {train_cfg}
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best=None),
                     logger=dict(interval=1))
custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=4),
    dict(type='ProgressivePatchHook', milestones=[2, 100], patch_sizes=[16, 32],
         batch_sizes={caps!r}, recipe_total_batch_sizes=[4, 4]),
    dict(type='ExactResumeHook'),
]
randomness = dict(seed=0, diff_rank_seed=False, deterministic=False)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
'''
ACCUMULATING = ("dict(type='AccumulatingIterBasedTrainLoop', max_iters=6, val_interval=100, "
                "total_batch_size=4)")
PLAIN = "dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=100)"
MODEL = dict(TINY_MODEL, prior_head=dict(TINY_MODEL['prior_head'],
                                         scheduler=dict(type='NoiselessHIDiffScheduler')))


def write(tmp_path, data, name, caps, train_cfg=ACCUMULATING) -> str:
    path = tmp_path / f'{name}.py'
    path.write_text(TEMPLATE.format(
        base=osp.join(REPO, 'configs', 'hidiff_gopro.py'), name=name,
        work_dir=str(tmp_path / name), model=MODEL, data=data, train_cfg=train_cfg, caps=caps))
    return str(path)


def train_here(config: str, monkeypatch) -> None:
    """tools/train.py in this process, on one thread."""
    monkeypatch.setenv('LOCAL_RANK', '0')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(osp.join(REPO, 'tools', 'train.py'))['main']([config])
    finally:
        torch.set_num_threads(threads)


def weights(work_dir: str, it: int) -> dict:
    path = osp.join(work_dir, f'iter_{it}.pth')
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def log_text(work_dir: str) -> str:
    import glob
    return ''.join(open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_accumulation_equals_two_processes_and_whole_batch(tiny_data, tmp_path, monkeypatch):
    accumulated = write(tmp_path, tiny_data, 'accumulated', [2, 1])
    whole = write(tmp_path, tiny_data, 'whole', [4, 4])
    two = write(tmp_path, tiny_data, 'two', [2, 1])
    plain = write(tmp_path, tiny_data, 'plain', [2, 1], PLAIN)  # MMEngine's loop: no accumulation
    for config in (accumulated, whole, plain):
        train_here(config, monkeypatch)
    run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
              'tools/train.py', two, '--launcher', 'pytorch'], timeout=400)

    work = {name: str(tmp_path / name) for name in ('accumulated', 'whole', 'two', 'plain')}
    assert '= 1 process(es) x [2, 1] per micro-batch x [2, 4] micro-batches' in \
        log_text(work['accumulated'])
    assert '= 2 process(es) x [2, 1] per micro-batch x [1, 2] micro-batches' in \
        log_text(work['two'])
    assert '= 1 process(es) x [4, 4] per micro-batch x [1, 1] micro-batches' in \
        log_text(work['whole'])
    assert 'DIFFERS FROM THE RECIPE' in log_text(work['plain'])
    for it in range(1, 7):
        reference = weights(work['whole'], it)
        for name in ('accumulated', 'two'):
            diff = max_diff(weights(work[name], it), reference)
            assert diff <= 1e-6, f'{name}, iteration {it}: max weight difference {diff}'
    # the comparison can fail: a step on 2 pairs differs from a step on 4
    assert max_diff(weights(work['plain'], 1), weights(work['whole'], 1)) > 1e-5
    # and the steps did something in both stages
    assert max_diff(weights(work['whole'], 3), weights(work['whole'], 4)) > 1e-5
    s4, s6 = weights(work['whole'], 4), weights(work['whole'], 6)
    assert any(not torch.equal(s4[k], s6[k]) for k in s6 if k.startswith('prior_head.denoiser'))
    final = torch.load(osp.join(work['accumulated'], 'iter_6.pth'), weights_only=True)
    assert final['meta']['hidiff_stage'] == 2
