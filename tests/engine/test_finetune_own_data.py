"""configs/hidiff_finetune_own_data.py, end to end on a tiny model (its data settings as they
are): photo folders with odd names and sizes -> check_pairs.py -> official-format weights
converted by convert_official_checkpoint.py -> fine-tuning through both stages with
accumulation and the leaderboard metrics -> an exact resume."""
import glob
import json
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
from engine_utils import REPO
from mmagic.registry import MODELS
from mmengine.config import Config
from tiny_config import TINY_MODEL

from hidiff_mm.models.official import EDITOR_PREFIX

CONFIG = osp.join(REPO, 'configs', 'hidiff_finetune_own_data.py')
RELEASED = ('net_g', 'net_le_dm', 'net_d')  # the official GoPro release has no net_le
TEMPLATE = '''
_base_ = {base!r}
experiment_name = {name!r}
work_dir = {work_dir!r}
load_from = {weights!r}
model = {model!r}
train_dataloader = dict(num_workers=0, dataset=dict(data_root={data!r} + '/train'))
val_dataloader = dict(num_workers=0, dataset=dict(data_root={data!r} + '/val'))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval=2, total_batch_size=2)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=2),
    dict(type='ProgressivePatchHook', milestones=[2], patch_sizes=[256], batch_sizes=[1],
         recipe_total_batch_sizes=[2]),
    dict(type='ExactResumeHook'),
]
randomness = dict(seed=0, deterministic=False)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
'''
# the tiny networks; whole validation photos in tiles of 128 px (several per photo)
MODEL = dict(TINY_MODEL, test_cfg=dict(tile=128, tile_overlap=16))


def photos(root: str) -> None:
    """Blurry/sharp photo pairs with spaces, upper-case extensions and different sizes."""
    rng = np.random.default_rng(0)
    for folder in ('blurry', 'sharp'):
        os.makedirs(osp.join(root, folder))
    for i, (h, w) in enumerate([(256, 288), (300, 256), (256, 256), (288, 320), (264, 272),
                                (256, 312)]):
        sharp = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (w, h),
                           interpolation=cv2.INTER_NEAREST)
        name = f'holiday photo {i}.' + ('JPG' if i % 2 else 'png')
        cv2.imwrite(osp.join(root, 'sharp', name), sharp)
        cv2.imwrite(osp.join(root, 'blurry', name), cv2.blur(sharp, (9, 9)))


def official_files(tmp_path, config: str) -> dict:
    """The released networks of a seeded tiny model, as official ``{'params': ...}`` files."""
    torch.manual_seed(7)
    state = MODELS.build(Config.fromfile(config).model).state_dict()
    files = {}
    for role in RELEASED:
        prefix = EDITOR_PREFIX[role]
        files[role] = str(tmp_path / f'{role}.pth')
        torch.save({'params': {k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)}}, files[role])
    return {k: v for k, v in state.items() if not k.startswith(EDITOR_PREFIX['net_le'])}


def write(tmp_path, name: str, data: str, weights: str, iters: int = 4) -> str:
    path = tmp_path / f'{name}.py'
    path.write_text(TEMPLATE.format(base=CONFIG, name=name, work_dir=str(tmp_path / name),
                                    weights=weights, model=MODEL, data=data, iters=iters))
    return str(path)


def run_script(path: str, argv, monkeypatch) -> None:
    """A tool's ``__main__`` in this process, on one thread."""
    monkeypatch.setattr(sys, 'argv', [path] + [str(a) for a in argv])
    monkeypatch.setenv('LOCAL_RANK', '0')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as exit:
        assert not exit.code, f'{path} exited with {exit.code}'
    finally:
        torch.set_num_threads(threads)


def state(work_dir: str, it: int) -> dict:
    return torch.load(osp.join(work_dir, f'iter_{it}.pth'), map_location='cpu',
                      weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(own data root, converted checkpoint, the converted weights)."""
    tmp = tmp_path_factory.mktemp('own')
    photos(str(tmp / 'photos'))
    monkeypatch = pytest.MonkeyPatch()
    try:
        tools = osp.join(REPO, 'tools')
        run_script(osp.join(tools, 'dataset_converters', 'check_pairs.py'),
                   [tmp / 'photos' / 'blurry', tmp / 'photos' / 'sharp', '--out', tmp / 'own',
                    '--val', 2], monkeypatch)
        config = write(tmp, 'tiny', str(tmp / 'own'), 'unused')
        weights = official_files(tmp, config)
        out = str(tmp / 'hidiff_official.pth')
        run_script(osp.join(tools, 'convert_official_checkpoint.py'),
                   [tmp / f'{role}.pth' for role in RELEASED] + ['--config', config, '--out', out],
                   monkeypatch)
    finally:
        monkeypatch.undo()
    return str(tmp / 'own'), out, weights


def test_finetunes_from_official_weights_and_resumes_exactly(converted, tmp_path, monkeypatch):
    data, checkpoint, official = converted
    train = osp.join(REPO, 'tools', 'train.py')
    full = write(tmp_path, 'full', data, checkpoint)
    run_script(train, [full], monkeypatch)
    part = write(tmp_path, 'part', data, checkpoint, iters=3)  # stops after stage-2 step 1
    run_script(train, [part], monkeypatch)
    resumed = write(tmp_path, 'part', data, checkpoint, iters=4)
    run_script(train, [resumed, '--resume'], monkeypatch)

    full_dir, part_dir = str(tmp_path / 'full'), str(tmp_path / 'part')
    final, reference = state(part_dir, 4), state(full_dir, 4)
    assert final['meta']['hidiff_stage'] == 2
    for key, value in reference['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key
    # started from the official weights: after 2 stage-1 steps the stage-2 networks are
    # still exactly the converted ones, the Transformer has moved on from them
    s2 = state(full_dir, 2)['state_dict']
    for prefix in (EDITOR_PREFIX['net_le_dm'], EDITOR_PREFIX['net_d']):
        keys = [k for k in official if k.startswith(prefix)]
        assert keys and all(torch.equal(s2[k], official[k]) for k in keys), prefix
    g = [k for k in official if k.startswith(EDITOR_PREFIX['net_g'])]
    assert any(not torch.equal(s2[k], official[k]) for k in g)
    # validated blind with the leaderboard metrics, the best MATLABPSNR kept
    scalars = [json.loads(line) for path in glob.glob(osp.join(full_dir, '*', 'vis_data',
                                                               'scalars.json'))
               for line in open(path)]
    val = [s for s in scalars if 'MATLABPSNR' in s]
    assert len(val) == 2  # at iterations 2 and 4
    for s in val:
        assert {'MATLABSSIM', 'blurry_input/MATLABPSNR', 'blurry_input/MATLABSSIM'} <= set(s)
    assert glob.glob(osp.join(full_dir, 'best_MATLABPSNR_iter_*.pth'))
    # one step = 2 pairs: 1 process x 1 pair x 2 accumulated micro-batches
    log = ''.join(open(p).read() for p in glob.glob(osp.join(full_dir, '*', '*.log')))
    assert 'total batch per phase [2] = 1 process(es) x [1] per micro-batch x [2]' in log
