"""The training configs are consistent with the official recipe they document."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmagic.registry import DATASETS
from mmengine import Config
from mmengine.registry import init_default_scope

import hidiff_mm  # noqa: F401  (registers the datasets and transforms)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _uses_progressive(path: str) -> bool:
    text = open(path).read()
    return 'ProgressivePatchHook' in text or '{{_base_.progressive}}' in text


ALL_CONFIGS = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
# the configs of the official recipe (the fine-tuning config uses the hook for its own batch)
TRAIN_CONFIGS = sorted(osp.relpath(p, REPO) for p in ALL_CONFIGS
                       if '_base_' not in p and 'finetune' not in p and _uses_progressive(p))
OFFICIAL_TOTAL = [64, 40, 32, 16, 8, 8]  # 4 GPUs x [16, 10, 8, 4, 2, 2]


def test_every_progressive_config_is_found():
    assert 'configs/hidiff_gopro.py' in TRAIN_CONFIGS and len(TRAIN_CONFIGS) >= 5


@pytest.mark.parametrize('path', TRAIN_CONFIGS)
def test_total_batch_is_the_official_one_on_8_processes(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    hook = next(h for h in cfg.custom_hooks if h.type == 'ProgressivePatchHook')
    assert hook.recipe_total_batch_sizes == OFFICIAL_TOTAL
    assert [8 * b for b in hook.batch_sizes] == OFFICIAL_TOTAL
    # fewer processes reach the same totals by accumulation: one step loads 64 pairs in all
    assert cfg.train_cfg.type == 'AccumulatingIterBasedTrainLoop'
    assert cfg.train_cfg.total_batch_size == max(OFFICIAL_TOTAL)
    loader = cfg.train_dataloader
    assert loader.batch_size >= max(hook.batch_sizes)  # the hook sub-samples the loaded batch
    crop = [t for t in loader.dataset.pipeline if t.type == 'PairedRandomCrop']
    assert crop[0].gt_patch_size >= max(hook.patch_sizes)
    assert cfg.randomness.get('diff_rank_seed', False), 'ranks need their own RNG streams'
    assert 'start_iter' not in hook  # restarts come from the StageSwitchHook


@pytest.mark.parametrize('name', ['hidiff_s2_gopro', 'hidiff_s2_realblur_j', 'hidiff_s2_realblur_r',
                                  'hidiff_s2_gopro_amp'])
def test_stage2_configs_start_from_stage1_strictly(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'hidiff', f'{name}.py'))
    assert cfg.model.stage == 2
    stage1 = name.replace('s2', 's1')
    assert cfg.model.init_from_stage1 == f'./work_dirs/{stage1}/iter_300000.pth'
    assert cfg.get('load_from') is None  # MMEngine's load_from would load non-strictly


def test_one_gpu_config_is_the_recipe_with_activation_checkpointing():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'hidiff', 'hidiff_gopro_1gpu.py'))
    base = Config.fromfile(osp.join(REPO, 'configs', 'hidiff_gopro.py'))
    assert cfg.model.generator.pop('with_cp') is True
    assert cfg.model == base.model
    for key in set(base.keys()) - {'model', 'experiment_name', 'work_dir'}:
        assert cfg[key] == base[key], key


def test_demo_continuations_chain_and_mix_the_scene_sets(tmp_path, monkeypatch):
    """The demo model's continuation configs load the run before them, stay in stage 2 from
    the first step, and the dead-leaves one trains on both folders."""
    shake = Config.fromfile(osp.join(REPO, 'configs', 'hidiff_demo_shake_continue.py'))
    leaves = Config.fromfile(osp.join(REPO, 'configs', 'hidiff_demo_leaves_finetune.py'))
    assert shake.load_from == './work_dirs/hidiff_demo_shake/iter_6000.pth'
    assert leaves.load_from == './work_dirs/hidiff_demo_shake_continue2/iter_12000.pth'
    assert leaves.model == shake.model
    for cfg in (shake, leaves):
        switch = next(h for h in cfg.custom_hooks if h.type == 'StageSwitchHook')
        assert switch.switch_iter == 0
        assert switch.param_scheduler[0].T_max == cfg.train_cfg.max_iters
    for root, num in (('data/shake/train', 3), ('data/leaves/train', 2)):
        for side in ('input', 'target'):
            (tmp_path / root / side).mkdir(parents=True)
            for i in range(num):
                value = 255 if side == 'target' else 40 * i + 20
                cv2.imwrite(str(tmp_path / root / side / f'{i:06d}.png'),
                            np.full((128, 128, 3), value, np.uint8))
    monkeypatch.chdir(tmp_path)
    init_default_scope('mmagic')
    dataset = DATASETS.build(leaves.train_dataloader.dataset)
    assert len(dataset) == 5
    assert dataset[4]['inputs'].shape == (3, 96, 96)
    assert dataset[4]['data_samples'].gt_img.shape == (3, 96, 96)
    assert float(dataset[4]['inputs'].float().mean()) == 60  # the second leaves pair


MODEL_CONFIGS = sorted(osp.relpath(p, REPO) for p in ALL_CONFIGS if '_base_' not in p)


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_checkpoints_record_their_training_and_the_oracle_is_asked_by_name(path):
    """Every config with a HI-Diff prior records stage and diffusion settings in its checkpoints
    (DiffusionSettingsHook among the default hooks); only the stage-1 recipes validate with the
    oracle prior, and they say so (model.oracle_prior=True)."""
    cfg = Config.fromfile(osp.join(REPO, path))
    if 'prior_head' not in cfg.model:
        return
    assert cfg.default_hooks.diffusion_settings.type == 'DiffusionSettingsHook'
    stage1_recipe = osp.basename(path).startswith('hidiff_s1_')
    assert cfg.model.get('oracle_prior', False) is stage1_recipe
