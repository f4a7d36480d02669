"""The AMP and EMA configs: they parse, build on CPU what can be built, AMP runs a bf16 step on
CPU, and the EMA runs (and resumes) across the stage switch with the expected averages."""
import os.path as osp
import runpy
import signal
from unittest import mock

import pytest
import torch
from engine_utils import REPO, run_tool
from mmagic.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from tiny_config import TINY_MODEL, write_config

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)

HIDIFF = osp.join(REPO, 'configs', 'hidiff')
BF16 = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False))
FP16 = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
# AMP config -> (the config it modifies, its AmpOptimWrapper settings)
AMP_CONFIGS = {
    'hidiff_s1_gopro_amp': ('hidiff/hidiff_s1_gopro.py', BF16),
    'hidiff_s2_gopro_amp': ('hidiff/hidiff_s2_gopro.py', BF16),
    'hidiff_gopro_amp': ('hidiff_gopro.py', BF16),
    'hidiff_gopro_amp_fp16': ('hidiff_gopro.py', FP16),
    'hidiff_gopro_amp_ema': ('hidiff/hidiff_gopro_ema.py', BF16),
}


def load(name: str) -> Config:
    return Config.fromfile(osp.join(REPO, 'configs', name))


def tiny_model(cfg: Config):
    """The config's model, shrunk to the tiny sizes (merged into its dicts)."""
    cfg = cfg.copy()
    cfg.merge_from_dict(dict(model=TINY_MODEL))
    return MODELS.build(cfg.model)


def amp_module():
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
    return amp


# ------------------------------------------------------------------------------ AMP configs
@pytest.mark.parametrize('name', sorted(AMP_CONFIGS))
def test_amp_config_changes_only_the_optimizer_wrapper(name):
    base_name, amp = AMP_CONFIGS[name]
    cfg, base = load(f'hidiff/{name}.py'), load(base_name)
    assert cfg.experiment_name == name and cfg.work_dir == f'./work_dirs/{name}'
    # the optimizer and the grad-norm clip are inherited; only type / dtype / loss_scale change
    expected = dict(base.optim_wrapper, **amp)
    assert cfg.optim_wrapper.to_dict() == expected
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=0.01)
    same = set(base.keys()) - {'optim_wrapper', 'experiment_name', 'work_dir', 'model'}
    assert set(cfg.keys()) == set(base.keys())
    for key in same:
        assert cfg[key] == base[key], key
    model, base_model = cfg.model.to_dict(), base.model.to_dict()
    if name == 'hidiff_s2_gopro_amp':  # continues the bf16 stage-1 run, not the fp32 one
        assert model.pop('init_from_stage1') == './work_dirs/hidiff_s1_gopro_amp/iter_300000.pth'
        base_model.pop('init_from_stage1')
    assert model == base_model


def test_fp16_is_the_bf16_config_with_two_options_changed(monkeypatch):
    """The documented command line gives the fp16 config's wrapper, and equals ``--amp``."""
    monkeypatch.setenv('LOCAL_RANK', '0')  # train.parse_args sets it; restored afterwards
    cfg = load('hidiff/hidiff_gopro_amp.py')
    cfg.merge_from_dict({'optim_wrapper.dtype': 'float16', 'optim_wrapper.loss_scale': 'dynamic'})
    assert cfg.optim_wrapper == load('hidiff/hidiff_gopro_amp_fp16.py').optim_wrapper

    train = runpy.run_path(osp.join(REPO, 'tools', 'train.py'))  # not as __main__: no run
    flag = train['build_cfg'](train['parse_args']([osp.join(REPO, 'configs', 'hidiff_gopro.py'),
                                                   '--amp']))
    fp16 = load('hidiff/hidiff_gopro_amp_fp16.py').optim_wrapper
    assert flag.optim_wrapper.type == fp16.type and flag.optim_wrapper.loss_scale == 'dynamic'
    # --amp leaves dtype unset: autocast then uses torch's default GPU dtype, float16
    assert 'dtype' not in flag.optim_wrapper and torch.get_autocast_dtype('cuda') == torch.float16


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only refusal')
def test_amp_optimizer_wrapper_refuses_to_build_without_cuda():
    model = tiny_model(load('hidiff/hidiff_s1_gopro_amp.py'))
    with pytest.raises(AssertionError, match='only available training on gpu'):
        build_optim_wrapper(model, load('hidiff/hidiff_s1_gopro_amp.py').optim_wrapper)


def tiny_batch(seed: int = 0, size: int = 16):
    from mmagic.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g).float() for _ in range(2)]
    samples = [DataSample(gt_img=torch.randint(0, 256, (3, size, size), generator=g).float())
               for _ in range(2)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('stage', [1, 2])
def test_bf16_amp_train_step_runs_on_cpu(stage):
    """With the CUDA check lifted, the config's AmpOptimWrapper trains a tiny model on CPU:
    the forward runs in bfloat16 (CPU autocast), weights and gradients stay float32, the
    frozen networks stay put, and the disabled loss scaler leaves the loss unscaled."""
    cfg = load('hidiff/hidiff_gopro_amp.py')
    model = tiny_model(cfg)
    model.set_stage(stage)
    amp = amp_module()
    with mock.patch.object(amp, 'is_cuda_available', return_value=True):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, amp.AmpOptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    assert not wrapper.loss_scaler.is_enabled()
    dtypes = []
    handle = model.generator.output.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for it in range(2):
        log_vars = model.train_step(tiny_batch(it), wrapper)
    handle.remove()
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert ('loss_prior' in log_vars) == (stage == 2)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    after = model.state_dict()
    changed = {k.split('.')[0] if k.startswith('generator') else '.'.join(k.split('.')[:2])
               for k in before if not torch.equal(before[k], after[k])}
    trained = {1: {'generator', 'prior_head.encoder_s1'},
               2: {'generator', 'prior_head.encoder_s2', 'prior_head.denoiser'}}[stage]
    assert changed == trained
    state = wrapper.state_dict()  # what a checkpoint stores: no loss-scale state in bf16
    assert state['loss_scaler'] == {}


# ------------------------------------------------------------------------------ EMA configs
def test_ema_config_adds_the_ema_hook_to_the_one_run_recipe():
    cfg, base = load('hidiff/hidiff_gopro_ema.py'), load('hidiff_gopro.py')
    assert cfg.ema_hook == dict(type='EMAHook', ema_type='ExponentialMovingAverage',
                                momentum=0.001, update_buffers=False)
    hooks = [h for h in cfg.custom_hooks if h['type'] != 'EMAHook']
    assert hooks == base.custom_hooks  # same switch iteration, patch schedule and hooks
    assert [h for h in cfg.custom_hooks if h['type'] == 'EMAHook'] == [cfg.ema_hook]
    assert cfg.optim_wrapper == base.optim_wrapper and cfg.train_cfg == base.train_cfg
    amp_ema = load('hidiff/hidiff_gopro_amp_ema.py')
    assert amp_ema.custom_hooks == cfg.custom_hooks


def test_ema_hook_builds_an_ema_of_the_whole_model():
    """decay 0.999 = momentum 0.001; every parameter of both stages is averaged, so the
    averaged set does not change when the stage switch changes what is trainable."""
    cfg = load('hidiff/hidiff_gopro_ema.py')
    hook = HOOKS.build(cfg.ema_hook)
    model = tiny_model(cfg)
    runner = mock.Mock(model=model)
    hook.before_run(runner)
    ema = hook.ema_model
    assert type(ema).__name__ == 'ExponentialMovingAverage' and ema.momentum == 0.001
    assert not ema.update_buffers
    names = set(dict(model.named_parameters()))
    assert set(ema.avg_parameters) == names
    model.set_stage(2)
    assert set(dict(model.named_parameters())) == names


# ------------------------------------------------------------------------------ EMA training runs
EMA_MOMENTUM = 0.25  # large, so that eight iterations move the average visibly


def write_ema_config(tmp_path, data: str, name: str, kill: int = None) -> str:
    """The tiny training config with the EMA config's hook (momentum raised) added."""
    work_dir = str(tmp_path / name)
    base = write_config(str(tmp_path / f'{name}_base.py'), data, work_dir, iters=8, switch=4,
                        kill=kill)
    ema_hook = dict(load('hidiff/hidiff_gopro_ema.py').ema_hook, momentum=EMA_MOMENTUM)
    hooks = load(base).custom_hooks + [ema_hook]
    path = str(tmp_path / f'{name}.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.basename(base)!r}]\ncustom_hooks = {hooks!r}\n')
    return path


def checkpoint(work_dir: str, it: int) -> dict:
    return torch.load(osp.join(work_dir, f'iter_{it}.pth'), map_location='cpu',
                      weights_only=True)


def raw_and_ema(ckpt: dict):
    """EMAHook stores the EMA as ``state_dict`` and the raw weights as ``ema_state_dict``."""
    raw = {k[len('module.'):]: v for k, v in ckpt['ema_state_dict'].items()
           if k.startswith('module.')}
    return raw, ckpt['state_dict']


@pytest.fixture(scope='module')
def ema_run(tiny_data, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('ema')
    config = write_ema_config(tmp_path, tiny_data, 'ema')
    run_tool(['tools/train.py', config])
    return tmp_path, str(tmp_path / 'ema')


def test_ema_checkpoints_follow_the_decay_formula_across_the_switch(ema_run):
    _, work_dir = ema_run
    ckpts = [checkpoint(work_dir, it) for it in range(1, 9)]
    assert [c['meta']['hidiff_stage'] for c in ckpts] == [1] * 4 + [2] * 4
    raws, emas = zip(*(raw_and_ema(c) for c in ckpts))
    assert raws[0].keys() == emas[0].keys()
    params = [k for k in raws[0] if not k.startswith('data_preprocessor.')]
    # an EMA computed here from the recorded raw weights: a copy after the first iteration,
    # then ema = (1 - m) * ema + m * raw after each one (through validation at iteration 4)
    expected = {k: raws[0][k].clone() for k in params}
    for it, (raw, ema, ckpt) in enumerate(zip(raws, emas, ckpts), start=1):
        assert int(ckpt['ema_state_dict']['steps']) == it
        if it > 1:
            for k in params:
                expected[k] = (1 - EMA_MOMENTUM) * expected[k] + EMA_MOMENTUM * raw[k]
        worst = max((ema[k] - expected[k]).abs().max().item() for k in params)
        assert worst <= 1e-6, f'iteration {it}: EMA off by {worst}'
    # the EMA is not the raw weights, for the networks trained in each stage
    raw8, ema8 = raws[-1], emas[-1]

    def differs(prefix):
        return any(not torch.allclose(raw8[k], ema8[k], atol=1e-7)
                   for k in params if k.startswith(prefix))

    assert differs('generator.') and differs('prior_head.encoder_s2.')
    assert differs('prior_head.denoiser.')
    # stage 1 leaves the denoiser at its initial weights, so its EMA is exactly those weights
    den = [k for k in params if k.startswith('prior_head.denoiser.')]
    assert all(torch.equal(raws[3][k], emas[3][k]) for k in den)
    # the stage-1 encoder is frozen in stage 2: its raw weights stay, its EMA keeps closing in
    enc1 = [k for k in params if k.startswith('prior_head.encoder_s1.')]
    assert all(torch.equal(raws[3][k], raw8[k]) for k in enc1)
    gaps = [max((e[k] - raw8[k]).abs().max().item() for k in enc1) for e in emas[3:]]
    assert all(b < a for a, b in zip(gaps, gaps[1:]))


def test_ema_resume_after_sigkill_in_stage_2_equals_uninterrupted_run(ema_run, tiny_data):
    tmp_path, full_dir = ema_run
    crash = write_ema_config(tmp_path, tiny_data, 'crash', kill=6)
    proc = run_tool(['tools/train.py', crash], check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    resumed = write_ema_config(tmp_path, tiny_data, 'crash')
    run_tool(['tools/train.py', resumed, '--resume'])
    full, crashed = checkpoint(full_dir, 8), checkpoint(str(tmp_path / 'crash'), 8)
    assert crashed['meta']['hidiff_stage'] == 2
    for key in ('state_dict', 'ema_state_dict'):
        a, b = full[key], crashed[key]
        assert a.keys() == b.keys()
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert worst <= 1e-6, f'{key}: {worst}'
