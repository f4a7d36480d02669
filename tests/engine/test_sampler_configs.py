"""The sampler, one-stage and study configs build the models they describe."""
import glob
import os.path as osp

import pytest
from engine_utils import REPO
from mmagic.registry import MODELS
from mmengine import Config

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'hidiff', 'samplers', '*.py')) +
                 glob.glob(osp.join(REPO, 'configs', 'hidiff', 'study', '*.py')) +
                 glob.glob(osp.join(REPO, 'configs', 'hidiff', 'hidiff_onestage_*.py')))


def test_all_found():
    assert len(CONFIGS) == 7


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p))
def test_config_builds_its_model_and_records_its_settings(path):
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    hooks = [h.type for h in cfg.custom_hooks]
    # recorded and checked by the runtime's default hook, not a second copy in custom_hooks
    assert cfg.default_hooks.diffusion_settings.type == 'DiffusionSettingsHook'
    assert 'DiffusionSettingsHook' not in hooks
    one_stage = 'onestage' in osp.basename(path)
    assert (type(model).__name__ == 'HIDiffOneStage') == one_stage
    assert ('PriorRampHook' in hooks) == one_stage and 'StageSwitchHook' not in hooks
    sampler = model.prior_head.scheduler.sampler
    if 'samplers' in path:
        assert sampler.name.rstrip('+') in osp.basename(path) and cfg.model.test_cfg.steps == 4
    else:
        assert sampler.name == 'posterior_mean'
