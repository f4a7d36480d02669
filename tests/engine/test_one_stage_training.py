"""One-stage training through tools/train.py (exact resume, two processes), the prior ramp and
the diffusion settings that checkpoints record."""
import os.path as osp
import signal
from types import SimpleNamespace

import pytest
import torch
from engine_utils import REPO, run_tool
from test_training_e2e import free_port, max_diff, weights
from tiny_config import TEMPLATE, TINY_MODEL

from hidiff_mm.engine.hooks import DiffusionSettingsHook, PriorRampHook, StageSwitchHook
from hidiff_mm.utils.errors import ConfigError

NETWORKS = ('generator.', 'prior_head.encoder_s1.', 'prior_head.encoder_s2.',
            'prior_head.denoiser.')


def write_one_stage_config(path: str, data: str, work_dir: str, kill: int = None,
                           iters: int = 8) -> str:
    """The tiny model on the one-stage demo config: ramp from iteration 2 to 6."""
    hooks = ["dict(type='PriorRampHook', begin=2, end=6)", "dict(type='ExactResumeHook')",
             "dict(type='DiffusionSettingsHook')"]
    if kill is not None:
        hooks.append(f"dict(type='KillAfterIterHook', kill_iter={kill})")
    with open(path, 'w') as f:
        f.write(TEMPLATE.format(
            demo=osp.join(REPO, 'configs', 'hidiff', 'hidiff_onestage_demo.py'),
            work_dir=work_dir, data=data, iters=iters, workers=0, batch=2,
            crop="dict(type='PairedRandomCrop', gt_patch_size=16),", hooks=', '.join(hooks),
            val_interval=iters, model=TINY_MODEL, checkpoint_interval=1))
    return path


def test_ramp_weights():
    hook = PriorRampHook(begin=2, end=6)
    assert [hook.weight(i) for i in range(8)] == [0, 0, 0, 0.25, 0.5, 0.75, 1, 1]
    assert [PriorRampHook(3, 3).weight(i) for i in (2, 3, 4)] == [0, 1, 1]
    with pytest.raises(ValueError, match='0 <= begin <= end'):
        PriorRampHook(begin=5, end=4)


def test_ramp_refuses_a_stage_switch_and_a_two_stage_model():
    model = SimpleNamespace(set_diffused_weight=None)
    with pytest.raises(ValueError, match='remove the StageSwitchHook'):
        PriorRampHook(0, 1).before_train(SimpleNamespace(
            model=model, hooks=[StageSwitchHook(switch_iter=1)]))
    with pytest.raises(ConfigError, match="HIDiffOneStage"):
        PriorRampHook(0, 1).before_train(SimpleNamespace(model=object(), hooks=[]))


def test_one_stage_resume_after_sigkill_equals_uninterrupted_run(tiny_data, tmp_path):
    full_dir, crash_dir = str(tmp_path / 'full'), str(tmp_path / 'crash')
    run_tool(['tools/train.py', write_one_stage_config(str(tmp_path / 'full.py'), tiny_data,
                                                       full_dir)])
    crash = write_one_stage_config(str(tmp_path / 'crash.py'), tiny_data, crash_dir, kill=4)
    assert run_tool(['tools/train.py', crash], check=False).returncode == -signal.SIGKILL
    resumed = write_one_stage_config(str(tmp_path / 'resume.py'), tiny_data, crash_dir)
    run_tool(['tools/train.py', resumed, '--resume'])

    final = torch.load(osp.join(crash_dir, 'iter_8.pth'), map_location='cpu', weights_only=True)
    assert max_diff(final['state_dict'], weights(osp.join(full_dir, 'iter_8.pth'))) <= 1e-6
    assert final['meta']['hidiff_diffusion']['sampler'] == dict(type='posterior_mean')
    assert final['meta']['hidiff_stage'] == 'joint'  # no stage switch
    first = weights(osp.join(full_dir, 'iter_1.pth'))
    for prefix in NETWORKS:  # all four networks train in the one run
        keys = [k for k in first if k.startswith(prefix)]
        assert keys and any(not torch.equal(first[k], final['state_dict'][k]) for k in keys)


def test_one_stage_two_process_run(tiny_data, tmp_path):
    """DDP over all four networks, no unused parameters, at weights 0, 0.25 and 1."""
    work_dir = str(tmp_path / 'dist')
    config = write_one_stage_config(str(tmp_path / 'dist.py'), tiny_data, work_dir, iters=3)
    with open(config, 'a') as f:
        f.write("custom_hooks[0] = dict(type='PriorRampHook', begin=0, end=2)\n")
    run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
              'tools/train.py', config, '--launcher', 'pytorch'], timeout=400)
    final = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu', weights_only=True)
    assert len(final['meta']['rng_states']) == 2
    first = weights(osp.join(work_dir, 'iter_1.pth'))
    for prefix in NETWORKS:
        assert any(not torch.equal(first[k], final['state_dict'][k]) for k in first
                   if k.startswith(prefix))


class ListLogger:
    def __init__(self) -> None:
        self.lines = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)


def runner_for(scheduler: dict) -> SimpleNamespace:
    from mmagic.registry import MODELS
    head = MODELS.build(dict(type='LatentPriorHead', encoder_s1=None,
                             encoder_s2=dict(type='HIDiffLatentEncoder', in_channels=3,
                                             embed_dim=4, num_blocks=1),
                             denoiser=dict(type='HIDiffMLPDenoiser', prior_channels=16,
                                           num_layers=1),
                             scheduler=dict(type='HIDiffScheduler', **scheduler)))
    return SimpleNamespace(model=SimpleNamespace(prior_head=head), logger=ListLogger())


def test_settings_hook_records_then_checks_what_a_checkpoint_was_trained_with():
    hook, checkpoint = DiffusionSettingsHook(), {}
    trained = runner_for({})
    hook.before_save_checkpoint(trained, checkpoint)
    assert checkpoint['meta']['hidiff_diffusion'] == trained.model.prior_head.scheduler.settings()

    same = runner_for({})
    hook.after_load_checkpoint(same, checkpoint)
    assert same.logger.lines == []
    other_sampler = runner_for(dict(sampler=dict(type='dpmsolver++', solver_order=3)))
    hook.after_load_checkpoint(other_sampler, checkpoint)
    assert other_sampler.logger.lines == [
        "DiffusionSettingsHook: the checkpoint: sampler: trained with {'type': "
        "'posterior_mean'}, sampling "
        "with {'type': 'dpmsolver++', 'solver_order': 3}"]
    with pytest.raises(ValueError, match=r"num_train_timesteps: trained 8, configured 16.*"
                       r"Set model.prior_head.scheduler.num_train_timesteps=8"):
        hook.after_load_checkpoint(runner_for(dict(num_train_timesteps=16)), checkpoint)
    unrecorded = runner_for(dict(prediction_type='sample'))
    hook.after_load_checkpoint(unrecorded, {'meta': {}})
    assert 'records no diffusion settings' in unrecorded.logger.lines[0]
