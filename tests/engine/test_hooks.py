"""Unit tests of the training hooks and the atomic checkpoint backend."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmagic.structures import DataSample
from mmengine.fileio import get_file_backend
from mmengine.optim import OptimWrapper

from hidiff_mm.engine import AccumulatingIterBasedTrainLoop, ProgressivePatchHook
from hidiff_mm.engine.hooks.exact_resume_hook import get_rng_state, set_rng_state

OFFICIAL = dict(milestones=[20000, 40000, 60000, 80000, 100000, 300000],
                patch_sizes=[128, 160, 192, 256, 320, 384], batch_sizes=[16, 10, 8, 4, 2, 2])
# the configs' form: at most 8, 5, 4, 2, 1, 1 pairs per process at once, total 64 ... 8
RECIPE = dict(OFFICIAL, batch_sizes=[8, 5, 4, 2, 1, 1],
              recipe_total_batch_sizes=[64, 40, 32, 16, 8, 8])


def test_progressive_phases_follow_the_official_boundaries():
    hook = ProgressivePatchHook(**OFFICIAL)
    # 0-based iteration i is the official 1-based iteration i + 1
    assert [hook.phase(i) for i in (0, 19999, 20000, 99999, 100000, 299999, 400000)] == \
        [0, 0, 1, 4, 5, 5, 5]
    restarted = ProgressivePatchHook(**OFFICIAL, start_iter=[0, 300000])
    assert restarted.phase(300000) == 0 and restarted.phase(320000) == 1
    with pytest.raises(ValueError, match='same length'):
        ProgressivePatchHook([1, 2], [8], [1, 1])


def test_progressive_hook_subsamples_and_crops_pairs_alike():
    hook = ProgressivePatchHook([2, 4], [8, 12], [3, 2])
    inputs = [torch.arange(16 * 16).view(1, 16, 16).repeat(3, 1, 1) + 1000 * i for i in range(4)]
    samples = [DataSample(gt_img=x.clone() + 0.5) for x in inputs]
    batch = dict(inputs=list(inputs), data_samples=samples)
    np.random.seed(0)
    hook.before_train_iter(SimpleNamespace(iter=0), 0, batch)
    assert len(batch['inputs']) == 3 and batch['inputs'][0].shape == (3, 8, 8)
    ids = []
    for x, s in zip(batch['inputs'], batch['data_samples']):
        assert torch.equal(s.gt_img, x + 0.5)  # same window in input and target
        ids.append(int(x[0, 0, 0]) // 1000)
    assert len(set(ids)) == 3  # without replacement
    offsets = {int(x[0, 0, 0]) % 1000 for x in batch['inputs']}
    assert len(offsets) == 1  # one window shared by the batch

    big = dict(inputs=[torch.zeros(3, 10, 10)] * 2,
               data_samples=[DataSample(gt_img=torch.zeros(3, 10, 10))] * 2)
    with pytest.raises(ValueError, match='larger than the loaded'):
        hook.before_train_iter(SimpleNamespace(iter=3), 0, big)


def test_rng_state_round_trip():
    import random
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = get_rng_state()
    expected = (random.random(), np.random.randn(), torch.rand(3))
    set_rng_state(state)
    got = (random.random(), np.random.randn(), torch.rand(3))
    assert expected[0] == got[0] and expected[1] == got[1] and torch.equal(expected[2], got[2])
    # only tensors: loads with weights_only=True
    assert all(torch.is_tensor(v) for v in state.values())


def test_atomic_backend_replaces_whole_files(tmp_path, monkeypatch):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='atomic_local'))
    target = str(tmp_path / 'ckpt.pth')
    backend.put(b'old', target)

    def fail(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError):
        backend.put(b'new contents', target)
    monkeypatch.undo()
    with open(target, 'rb') as f:
        assert f.read() == b'old'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temporary file left behind


def test_fault_tolerant_hooks_replace_the_checkpoint_hook_and_add_the_signal_hook():
    from mmengine.config import Config

    from hidiff_mm.engine import SignalCheckpointHook, fault_tolerant_hooks
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5)),
                      custom_hooks=[dict(type='ExactResumeHook')]))
    fault_tolerant_hooks(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook', interval=5)
    assert cfg.custom_hooks == [dict(type='ExactResumeHook'), dict(type='SignalCheckpointHook')]
    fault_tolerant_hooks(cfg)  # idempotent
    assert [h['type'] for h in cfg.custom_hooks] == ['ExactResumeHook', 'SignalCheckpointHook']
    with pytest.raises(ValueError, match=r"unknown signal names \['SIGFOO'\]"):
        SignalCheckpointHook(signals=['SIGTERM', 'SIGFOO'])


def test_atomic_checkpoint_hook_defaults_to_the_atomic_backend_for_local_folders():
    from hidiff_mm.engine import AtomicCheckpointHook
    assert AtomicCheckpointHook(interval=1).backend_args == dict(backend='atomic_local')
    assert AtomicCheckpointHook(interval=1, out_dir='s3://bucket/x').backend_args is None
    mine = dict(backend='local')
    assert AtomicCheckpointHook(interval=1, backend_args=mine).backend_args is mine


def test_find_resume_checkpoint_falls_back_to_the_newest_readable(tmp_path):
    from hidiff_mm.engine import find_resume_checkpoint
    from hidiff_mm.utils import CheckpointError
    assert find_resume_checkpoint(str(tmp_path)) == (None, None, [])
    for it in (2, 10, 9):
        torch.save({'meta': {'iter': it}}, tmp_path / f'iter_{it}.pth')
    torch.save({}, tmp_path / 'best_PSNR_iter_11.pth')  # not a resume point
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))
    path, ckpt, skipped = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_9.pth') and ckpt['meta']['iter'] == 9 and skipped == []
    (tmp_path / 'iter_9.pth').write_bytes(b'')  # damaged: the newest readable one is taken
    path, ckpt, skipped = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_10.pth') and ckpt['meta']['iter'] == 10
    assert len(skipped) == 1 and 'iter_9.pth (0 bytes)' in skipped[0]
    (tmp_path / 'last_checkpoint').write_text('')
    (tmp_path / 'iter_10.pth').write_bytes(b'\x00' * 7)
    path, _, skipped = find_resume_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth')
    assert skipped[0] == f'{tmp_path}/last_checkpoint is empty' and len(skipped) == 3
    (tmp_path / 'iter_2.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='no readable checkpoint in .* to resume from: '):
        find_resume_checkpoint(str(tmp_path))


def test_signal_hook_flags_the_first_signal_and_lets_the_second_through():
    import logging
    import signal
    from types import SimpleNamespace

    from hidiff_mm.engine import SignalCheckpointHook
    hook = SignalCheckpointHook(signals=['SIGINT'])
    # Python's own Ctrl-C handler, whatever this process inherited: a process started in the
    # background by a non-interactive shell (a CI runner) starts with SIGINT ignored
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    hook.before_run(SimpleNamespace(logger=logging.getLogger('test_signal_hook')))
    try:
        signal.raise_signal(signal.SIGINT)  # flagged: training goes on to the iteration's end
        assert hook.received == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)


class _Log:
    def __init__(self) -> None:
        self.info_lines, self.warnings = [], []

    def info(self, msg: str) -> None:
        self.info_lines.append(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def _runner(hook, loop, loaded=64):
    loop.dataloader = SimpleNamespace(batch_size=loaded)
    return SimpleNamespace(hooks=[hook], logger=_Log(), train_loop=loop,
                           optim_wrapper=OptimWrapper(torch.optim.SGD([torch.zeros(1)], lr=1)))


def _accumulating_loop():
    return AccumulatingIterBasedTrainLoop.__new__(AccumulatingIterBasedTrainLoop)


@pytest.mark.parametrize('world,loop,warns', [
    (1, 'accumulating', False), (4, 'accumulating', False), (8, 'accumulating', False),
    (3, 'accumulating', True), (1, 'plain', True), (8, 'plain', False)])
def test_plan_is_logged_and_a_missed_recipe_warns(monkeypatch, world, loop, warns):
    from hidiff_mm.engine.hooks import progressive_patch_hook
    monkeypatch.setattr(progressive_patch_hook, 'get_world_size', lambda: world)
    hook = ProgressivePatchHook(**RECIPE)
    runner = _runner(hook, _accumulating_loop() if loop == 'accumulating' else
                     SimpleNamespace(), loaded=64 // world)
    hook.before_train(runner)
    line, counts = runner.logger.info_lines[0], 8 // world
    assert bool(runner.logger.warnings) == warns
    if warns:  # as many pairs per process as the recipe's 8-process run, without accumulation
        assert hook.total_batch_sizes() == [world * b for b in RECIPE['batch_sizes']]
        assert 'DIFFERS FROM THE RECIPE' in runner.logger.warnings[0]
        assert ('do not divide' if world == 3 else 'AccumulatingIterBasedTrainLoop') in \
            runner.logger.warnings[0]
        assert not hook.accumulate
    else:
        assert hook.total_batch_sizes() == RECIPE['recipe_total_batch_sizes']
        assert (f'[64, 40, 32, 16, 8, 8] = {world} process(es) x [8, 5, 4, 2, 1, 1] per '
                f'micro-batch x {[counts] * 6} micro-batches') in line
    with pytest.raises(ValueError, match='one entry per phase'):
        ProgressivePatchHook(**dict(RECIPE, recipe_total_batch_sizes=[64]))


def test_hook_sets_the_phase_count_and_checks_the_loader(monkeypatch):
    from hidiff_mm.engine.hooks import progressive_patch_hook
    monkeypatch.setattr(progressive_patch_hook, 'get_world_size', lambda: 2)
    hook = ProgressivePatchHook([1, 2], [4, 8], [2, 1], recipe_total_batch_sizes=[8, 4])
    runner = _runner(hook, _accumulating_loop(), loaded=4)
    hook.before_train(runner)
    assert hook.plan == [(2, 2), (1, 2)]
    for it, (keep, size) in enumerate([(4, 4), (2, 8)]):
        batch = dict(inputs=[torch.zeros(3, 8, 8) for _ in range(4)],
                     data_samples=[DataSample(gt_img=torch.zeros(3, 8, 8)) for _ in range(4)])
        runner.iter = it
        hook.before_train_iter(runner, it, batch)
        assert len(batch['inputs']) == keep and batch['inputs'][0].shape[-1] == size
        assert runner.optim_wrapper._accumulative_counts == 2
    with pytest.raises(ValueError, match=r'keeps 4 samples.*yields 3.*total_batch_size=8'):
        hook.before_train(_runner(hook, _accumulating_loop(), loaded=3))


def test_progressive_schedule_restarts_at_the_stage_switch():
    from hidiff_mm.engine import StageSwitchHook
    hook = ProgressivePatchHook(**OFFICIAL)
    runner = SimpleNamespace(hooks=[StageSwitchHook(switch_iter=300000), hook], logger=_Log())
    hook.before_train(runner)
    assert hook.start_iters == [0, 300000]
    assert hook.phase(299999) == 5 and hook.phase(300000) == 0 and hook.phase(320000) == 1


def test_rng_states_are_gathered_only_where_a_checkpoint_is_due():
    from mmengine.hooks import CheckpointHook

    from hidiff_mm.engine import ExactResumeHook
    hook = ExactResumeHook()
    saver = CheckpointHook(interval=4, by_epoch=False, save_best='PSNR', rule='greater')
    runner = SimpleNamespace(hooks=[saver, hook], max_iters=10,
                             train_loop=SimpleNamespace(val_interval=3))
    due = []
    for it in range(10):
        runner.iter = it
        due.append(hook.checkpoint_due(runner))
    # completed iterations 3, 6, 9 (validation: save_best), 4, 8 (interval), 10 (last)
    assert [it + 1 for it, d in enumerate(due) if d] == [3, 4, 6, 8, 9, 10]
    runner.iter = 7
    hook.after_train_iter(runner, 0)
    checkpoint = dict(meta=dict(iter=8))
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['rng_states'] is hook._states  # gathered at this iteration
    stale = dict(meta=dict(iter=9))  # a save the hook did not foresee: rank 0's state now
    torch.rand(1)
    hook.before_save_checkpoint(runner, stale)
    assert torch.equal(stale['meta']['rng_states'][0]['torch'], torch.get_rng_state())
    assert not torch.equal(stale['meta']['rng_states'][0]['torch'],
                           checkpoint['meta']['rng_states'][0]['torch'])


def test_fast_path_hook_converts_the_model_for_its_device():
    """Before the run, each network gets the form its ``fast_path`` setting asks for where its
    parameters are (fast on the CPU by default; a pinned False stays exact), through a model
    wrapper too."""
    from hidiff_mm.engine.hooks import FastPathHook
    from hidiff_mm.models.backbones import HIDiffTransformer

    def tiny(**kwargs):
        return HIDiffTransformer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                                 heads=(1, 1, 1, 1), **kwargs)

    model = torch.nn.ModuleDict(dict(module=torch.nn.ModuleDict(dict(
        default=tiny(), exact=tiny(fast_path=False)))))
    assert FastPathHook.priority == 'HIGHEST'  # before CompileGeneratorHook (VERY_HIGH)
    FastPathHook().before_run(SimpleNamespace(model=model))
    nets = model['module']
    assert type(nets['default']).__name__ == 'FastHIDiffTransformer'
    assert type(nets['default'].latent.blocks[0].attn).__name__ == 'FastMDTA'
    assert type(nets['exact']) is HIDiffTransformer
