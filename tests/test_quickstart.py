# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The shipped demo model, its test sets, the figures and tools/quickstart.py."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from hidiff_mm.apis import deblur
from hidiff_mm.apis.demo_model import (DEMO_RECORD, DEMO_WEIGHTS, evaluate_pairs, init_demo_model,
                                       procedural_test_pairs, sharp_photo_pairs, summarize)
from hidiff_mm.datasets.dead_leaves import make_dead_leaves_image
from hidiff_mm.datasets.photos import PHOTOS, centre_square, load_photos, make_photo_pairs
from hidiff_mm.datasets.synthetic import make_blur_pair, make_split_pair
from hidiff_mm.visualization.figures import (chain_scalars, read_scalars, side_by_side_figure,
                                             training_curves_figure, trajectory_figure)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Output pixels are rounded to 8 bits, so a float difference between CPUs (AVX2 / AVX-512 /
# ARM kernels, ~1e-6 relative) moves at most a few pixels by one level: on a 128x128 image
# at ~27 dB (MSE ~130), even 1% of the values moving by one level changes the PSNR by about
# 0.01 dB. 0.05 dB allows that five times over; wrong weights or a changed pipeline move it
# by tenths to whole dB.
PSNR_TOL = 0.05


@pytest.fixture(scope='module')
def demo_model():
    return init_demo_model()


@pytest.fixture(scope='module')
def record():
    with open(DEMO_RECORD) as f:
        return json.load(f)


def load_quickstart():
    spec = importlib.util.spec_from_file_location('quickstart',
                                                  osp.join(REPO, 'tools', 'quickstart.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_weights_are_small_and_recorded(record):
    assert osp.getsize(DEMO_WEIGHTS) < 4 * 2**20
    assert record['weights']['dtype'] == 'float16'
    seeds = [str(seed) for seed in range(5)]
    for seed in seeds:  # the quick start's target on both procedural sets, every seed
        for key in ('seeds', 'dead_leaves'):
            assert record[key][seed]['psnr_blurry'] <= 27.0
            assert record[key][seed]['psnr_gain'] >= 2.0
            assert record[key][seed]['ssim_gain'] > 0.05


def test_demo_model_does_no_harm_to_photographs(record):
    # sharp in, sharp out: the output of a sharp photograph is the photograph
    assert record['sharp_photos']['psnr_mean'] >= 36.0
    assert min(record['sharp_photos']['psnr'].values()) >= 32.0
    assert record['sharp_photos']['psnr_min'] == min(record['sharp_photos']['psnr'].values())
    # blurred photographs: better on every seed, by 1 dB on average over seeds 0-4
    gains = [record['photos'][str(seed)]['psnr_gain'] for seed in range(5)]
    assert min(gains) > 0
    assert np.mean(gains) >= 1.0
    # the mildly blurred ones (blurry PSNR >= 28 dB) lose nothing on average
    per_image = [r for seed in record['photos_per_image'].values() for r in seed.values()]
    assert len(per_image) == 5 * len(PHOTOS)
    mild = [r['psnr_output'] - r['psnr_blurry'] for r in per_image if r['psnr_blurry'] >= 28]
    assert mild and np.mean(mild) >= 0
    assert record['photos_by_blur'][-1]['images'] == len(mild)


def test_demo_model_reproduces_sharp_photo_record(demo_model, record):
    pairs = [p for p in sharp_photo_pairs() if p[0] in ('astronaut', 'page')]
    for r in evaluate_pairs(demo_model, pairs):
        assert r['psnr_output'] == pytest.approx(record['sharp_photos']['psnr'][r['name']],
                                                 abs=PSNR_TOL)


def test_demo_model_reproduces_recorded_metrics(demo_model, record):
    names = sorted(record['check'])
    rows = evaluate_pairs(demo_model, procedural_test_pairs(0, num=len(names)))
    assert [r['name'] for r in rows] == names
    for r in rows:
        expected = record['check'][r['name']]
        assert r['psnr_blurry'] == pytest.approx(expected['psnr_blurry'], abs=PSNR_TOL)
        assert r['psnr_output'] == pytest.approx(expected['psnr_output'], abs=PSNR_TOL)
    summary = summarize(rows)
    assert summary['num_images'] == len(names)
    assert summary['psnr_gain'] == pytest.approx(
        np.mean([r['psnr_output'] - r['psnr_blurry'] for r in rows]))


def test_evaluation_passes_the_self_ensemble_on(demo_model):
    pairs = procedural_test_pairs(0, num=1, size=32)
    x8 = evaluate_pairs(demo_model, pairs, self_ensemble=True)[0]['output']
    direct = deblur(demo_model, np.ascontiguousarray(pairs[0][1][..., ::-1]), seed=0,
                    self_ensemble=True)[..., ::-1]
    np.testing.assert_array_equal(x8, direct)
    assert not np.array_equal(x8, evaluate_pairs(demo_model, pairs)[0]['output'])


def test_split_pairs_are_what_the_tool_writes(tmp_path):
    np.testing.assert_array_equal(make_split_pair(3, 'test', 2, 32, (9, 15))[0],
                                  make_blur_pair(np.random.default_rng([3, 1, 2]), 32, (9, 15))[0])
    with pytest.raises(ValueError, match='split'):
        make_split_pair(0, 'val', 0, 32)
    pairs = procedural_test_pairs(5, num=2, size=32)
    assert [p[0] for p in pairs] == ['000000', '000001']
    assert pairs[1][1].shape == (32, 32, 3) and pairs[1][1].dtype == np.uint8
    leaves = procedural_test_pairs(5, num=2, size=32, scene='dead_leaves')
    np.testing.assert_array_equal(
        leaves[1][2], make_split_pair(5, 'test', 1, 32, (9, 31), make_dead_leaves_image)[1])
    assert not np.array_equal(leaves[1][2], pairs[1][2])
    with pytest.raises(ValueError, match='scene'):
        procedural_test_pairs(5, num=1, scene='leaves')


def test_photos_are_square_deterministic_and_blurred():
    photos = load_photos(64)
    assert [name for name, _ in photos] == [name for name, _, _ in PHOTOS]
    assert all(img.shape == (64, 64, 3) and img.dtype == np.uint8 for _, img in photos)
    pairs, again = make_photo_pairs(seed=1, size=64), make_photo_pairs(seed=1, size=64)
    other = make_photo_pairs(seed=2, size=64)
    for (name, blurred, sharp), (_, blurred2, _), (_, blurred3, _) in zip(pairs, again, other):
        np.testing.assert_array_equal(blurred, blurred2)
        assert not np.array_equal(blurred, sharp) and not np.array_equal(blurred, blurred3)
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, 40:50] = 255  # a bar in the middle stays in the middle of the crop
    crop = centre_square(wide, 20)
    assert crop.shape == (20, 20, 3)
    assert crop[:, 10].min() == 255 and crop[:, 0].max() == 0


def test_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    rows = [dict(name='x', blurry=img, output=img, sharp=img[::-1].copy(), ssim_blurry=0.5,
                 ssim_output=0.6)]
    for path in (side_by_side_figure(rows, str(tmp_path / 'a.png'), title='t'),
                 trajectory_figure([('z_8', img), ('z_0', img)], img,
                                   str(tmp_path / 'sub' / 'c.png'), cols=2)):
        png = cv2.imread(path)
        assert png is not None and png.shape[0] > 100 and png.shape[1] > 100
    with pytest.raises(ValueError, match='at least one'):
        side_by_side_figure([], str(tmp_path / 'none.png'))


def test_training_curves_read_every_run_start(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        read_scalars(str(tmp_path))
    first = tmp_path / '20260101_000000' / 'vis_data'
    second = tmp_path / '20260101_010000' / 'vis_data'
    for folder in (first, second):
        folder.mkdir(parents=True)
    lines = [dict(step=10, loss=0.5, loss_pix=0.5), dict(step=20, loss=0.4, loss_pix=0.4),
             dict(step=20, PSNR=25.0, SSIM=0.8, **{'blurry_input/PSNR': 24.0})]
    (first / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in lines) + '\n')
    # logged by epoch (MMEngine's default): the validation record says step 0
    resumed = [dict(step=20, loss=0.3, loss_pix=0.3),
               dict(step=30, loss=0.2, loss_pix=0.1, loss_prior=0.1),
               dict(step=0, PSNR=26.0, **{'blurry_input/PSNR': 24.0})]
    (second / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in resumed))
    records = read_scalars(str(tmp_path))
    expected = [(10, 0.5, None), (20, 0.3, None), (20, None, 25.0), (30, 0.2, None),
                (30, None, 26.0)]
    assert [(r['step'], r.get('loss'), r.get('PSNR')) for r in records] == expected
    png = cv2.imread(training_curves_figure(records, str(tmp_path / 'b.png'), switch_iter=20))
    assert png is not None and png.shape[1] > png.shape[0]


def test_chained_runs_share_one_iteration_axis(tmp_path):
    runs = []
    for name, lines in (('first', [dict(step=50, loss=0.5), dict(step=100, loss=0.4),
                                   dict(step=0, PSNR=25.0, **{'blurry_input/PSNR': 24.0})]),
                        ('second', [dict(step=50, loss=0.3), dict(step=0, PSNR=26.0)]),
                        ('third', [dict(step=20, loss=0.2)])):
        folder = tmp_path / name / '20260101_000000' / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in lines))
        runs.append(str(tmp_path / name))
    records, restarts = chain_scalars(runs)
    assert restarts == [100, 150]
    assert [(r['step'], r.get('loss'), r.get('PSNR')) for r in records] == [
        (50, 0.5, None), (100, 0.4, None), (100, None, 25.0), (150, 0.3, None),
        (150, None, 26.0), (170, 0.2, None)]
    assert chain_scalars(runs[:1]) == (read_scalars(runs[0]), [])
    png = cv2.imread(training_curves_figure(records, str(tmp_path / 'c.png'), switch_iter=60,
                                            restarts=restarts))
    assert png is not None


def test_quickstart_photo_mode(demo_model, tmp_path):
    quickstart = load_quickstart()
    folder = tmp_path / 'mine'
    folder.mkdir()
    photo = make_photo_pairs(seed=0, size=40)[0][1]
    cv2.imwrite(str(folder / 'shaky.jpg'), photo)
    cv2.imwrite(str(folder / 'small.png'), photo[:24, :32])
    out = tmp_path / 'out'
    assert quickstart.main(['--photo', str(folder), '--out', str(out)]) == 0
    written = sorted(p.name for p in (out / 'figures').iterdir())
    assert written == ['shaky_hidiff.png', 'small_hidiff.png']
    got = cv2.imread(str(out / 'figures' / 'small_hidiff.png'))
    np.testing.assert_array_equal(got, deblur(demo_model, str(folder / 'small.png'), seed=0))
    with pytest.raises(FileNotFoundError, match='missing'):
        quickstart.main(['--photo', str(tmp_path / 'missing'), '--out', str(out)])


def test_quickstart_end_to_end_short(tmp_path, capsys):
    """Evaluation, the three figures and a 4-iteration fine-tune across the stage switch."""
    quickstart = load_quickstart()
    out, data, work = tmp_path / 'out', tmp_path / 'data', tmp_path / 'ft'
    assert quickstart.main([
        '--out', str(out), '--data', str(data), '--work-dir', str(work), '--seeds', '4',
        '--num-test', '2', '--', '--cfg-options', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=2', 'custom_hooks.0.switch_iter=2',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=1', 'val_dataloader.dataset.indices=2']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['seeds']['4']['num_images'] == summary['dead_leaves']['4']['num_images'] == 2
    assert summary['photos']['num_images'] == len(PHOTOS)
    assert [r['step'] for r in [summary['finetune']['first_val'],
                                summary['finetune']['last_val']]] == [2, 4]
    for name in ('a_side_by_side', 'a_dead_leaves_side_by_side', 'a_photos_side_by_side',
                 'b_training_curves', 'c_diffusion_trajectory'):
        assert cv2.imread(str(out / 'figures' / f'{name}.png')) is not None
    assert 'figures' in capsys.readouterr().out
