# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The dataset base configs build, on the folder layouts they name, into working loaders."""
import copy
from pathlib import Path

import cv2
import pytest
import torch
from mmagic.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets'
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob('*.py'))


def dataloaders(cfg: Config):
    """``(name, dataloader cfg)`` of every train/val/test loader in ``cfg``."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loaders = cfg.get(key)
        if loaders is None:
            continue
        for i, loader in enumerate(loaders if isinstance(loaders, list) else [loaders]):
            yield f'{key}[{i}]', loader


def test_the_dataset_configs_are_found():
    """Guards the parametrised tests below against an empty glob."""
    assert {'gopro.py', 'realblur_j.py', 'deblur_test.py'} <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_on_its_layout(name, tmp_path, monkeypatch, make_pairs):
    cfg = Config.fromfile(CONFIG_DIR / name)
    init_default_scope('mmagic')
    monkeypatch.chdir(tmp_path)
    loaders = list(dataloaders(cfg))
    assert loaders
    for key, loader in loaders:
        assert loader.persistent_workers is False and loader.sampler.type == 'DefaultSampler'
        assert loader.sampler.shuffle == key.startswith('train')
        dataset_cfg = copy.deepcopy(loader.dataset)
        assert dataset_cfg.type == 'PairedDeblurDataset'
        assert dataset_cfg.data_root.startswith('data/')
        crops = [t.gt_patch_size for t in dataset_cfg.pipeline if t.type == 'PairedRandomCrop']
        hw = (crops[0] + 3, crops[0] + 5) if crops else (16, 24)
        prefix = (dataset_cfg.data_prefix.img, dataset_cfg.data_prefix.gt)
        make_pairs(Path(dataset_cfg.data_root), ['p1.png', 'p2.png'], hw=hw, prefix=prefix)

        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == 2, key
        sample = dataset[0]
        inputs, gt = sample['inputs'], sample['data_samples'].gt_img
        expected = (3, crops[0], crops[0]) if crops else (3, *hw)
        assert tuple(inputs.shape) == tuple(gt.shape) == expected, key
        assert torch.equal(gt, 255 - inputs), key  # the pair stays aligned through the pipeline
        assert sample['data_samples'].metainfo['img_channel_order'] == 'rgb'


@pytest.mark.parametrize('name', CONFIGS)
def test_one_evaluator_per_loader_with_distinct_metric_names(name):
    cfg = Config.fromfile(CONFIG_DIR / name)
    init_default_scope('mmagic')
    for stage in ('val', 'test'):
        if f'{stage}_evaluator' not in cfg:
            continue
        evaluator = cfg[f'{stage}_evaluator']
        groups = evaluator if isinstance(evaluator[0], list) else [evaluator]
        loaders = cfg[f'{stage}_dataloader']
        assert len(groups) == (len(loaders) if isinstance(loaders, list) else 1)
        names = [f'{m.prefix}/{type(m).__name__}' for group in groups
                 for m in (METRICS.build(c) for c in group)]
        assert len(set(names)) == len(names), names


def test_synthetic_dataloader_end_to_end(tmp_path, monkeypatch, load_tool):
    monkeypatch.chdir(tmp_path)
    load_tool('make_synthetic_blur.py').main(['--num-train', '8', '--num-val', '2', '--size', '72'])
    cfg = Config.fromfile(CONFIG_DIR / 'synthetic.py')
    init_default_scope('mmagic')
    preprocessor = MODELS.build(dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3))

    batches = [next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=3))) for _ in range(2)]
    assert len(batches[0]['inputs']) == 4 and len(batches[0]['data_samples']) == 4
    for a, b in zip(batches[0]['inputs'], batches[1]['inputs']):
        assert a.shape == (3, 64, 64) and a.dtype == torch.uint8
        assert torch.equal(a, b)  # sampler, crop and dihedral all follow the seed
    data = preprocessor(batches[0], training=True)
    assert data['inputs'].shape == data['data_samples'].gt_img.shape == (4, 3, 64, 64)
    assert 0 <= data['inputs'].min() and data['inputs'].max() <= 1

    batch = next(iter(Runner.build_dataloader(cfg.val_dataloader)))
    sample = batch['data_samples'][0]
    expected = cv2.imread(sample.metainfo['img_path'])[..., ::-1].transpose(2, 0, 1).copy()
    assert torch.equal(batch['inputs'][0], torch.from_numpy(expected))
