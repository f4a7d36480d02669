# Copyright (c) hidiff_mm contributors. All rights reserved.
"""tools/demo.py and tools/visualize_diffusion.py (run in-process) and the trajectory API."""
import cv2
import numpy as np
import pytest
import torch
from apis_helpers import load_tool, smooth_image

from hidiff_mm.apis import deblur, diffusion_trajectory, labelled_grid, prior_labels


@pytest.fixture(scope='module')
def demo():
    return load_tool('demo')


@pytest.fixture(scope='module')
def visualize():
    return load_tool('visualize_diffusion')


def test_demo_folder(demo, tiny_files, tiny_model, tmp_path, capsys):
    config, checkpoint = tiny_files
    folder = tmp_path / 'in'
    folder.mkdir()
    images = {'a.png': smooth_image(0, 30, 44), 'b.jpg': smooth_image(1, 24, 24)}
    for name, img in images.items():
        cv2.imwrite(str(folder / name), img)
    cv2.imwrite(str(folder / 'c.png'), cv2.cvtColor(smooth_image(2, 16, 40), cv2.COLOR_BGR2GRAY))
    (folder / 'broken.png').write_bytes(b'not an image')
    (folder / 'notes.txt').write_text('ignored: not an image extension')
    out = tmp_path / 'out'
    rc = demo.main([str(folder), '--config', config, '--checkpoint', checkpoint, '--out',
                    str(out), '--seed', '3', '--tile', '16', '--overlap', '8'])
    assert rc == 1  # broken.png could not be read; the others were written
    err = capsys.readouterr().err
    assert 'broken.png' in err and 'cannot read image' in err
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png', 'c.png']
    a = cv2.imread(str(out / 'a.png'))
    ref = deblur(tiny_model, folder / 'a.png', seed=3, tile=16, overlap=8)
    assert np.array_equal(a, ref)
    assert cv2.imread(str(out / 'c.png')).shape == (16, 40, 3)


def test_demo_single_image_options_and_errors(demo, tiny_files, tiny_model, tmp_path):
    config, checkpoint = tiny_files
    img = smooth_image(4, 24, 32)
    cv2.imwrite(str(tmp_path / 'x.png'), img)
    out = tmp_path / 'out'
    args = [str(tmp_path / 'x.png'), '--config', config, '--out', str(out)]
    assert demo.main(args + ['--checkpoint', checkpoint, '--seed', '5', '--steps', '2',
                             '--self-ensemble']) == 0
    expected = deblur(tiny_model, img, seed=5, steps=2, self_ensemble=True)
    assert np.array_equal(cv2.imread(str(out / 'x.png')), expected)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        demo.main(args + ['--checkpoint', str(tmp_path / 'missing.pth')])
    with pytest.raises(ValueError, match='multiple of 8'):
        demo.main(args + ['--checkpoint', checkpoint, '--tile', '20'])
    with pytest.raises(ValueError, match='num_inference_steps'):
        demo.main(args + ['--checkpoint', checkpoint, '--steps', '99'])
    (tmp_path / 'bad.png').write_bytes(b'')
    with pytest.raises(ValueError, match='bad.png'):
        demo.main([str(tmp_path / 'bad.png'), '--config', config, '--checkpoint', checkpoint,
                   '--out', str(out)])


def test_prior_labels():
    assert prior_labels(8, list(range(7, -1, -1))) == [
        'z_8 (noise)', 'z_7', 'z_6', 'z_5', 'z_4', 'z_3', 'z_2', 'z_1', 'z_0']
    assert prior_labels(8, [7, 5, 2, 0]) == ['z_8 (noise)', 'z_6', 'z_3', 'z_1', 'z_0']
    assert prior_labels(16, [15]) == ['z_16 (noise)', 'z_0']


def test_trajectory_and_grid(tiny_model):
    img = smooth_image(5, 21, 35)
    items = diffusion_trajectory(tiny_model, img, seed=6)
    assert [label for label, _ in items][:2] == ['blurry input', 'z_8 (noise)']
    assert len(items) == 10 and items[-1][0] == 'z_0'
    assert np.array_equal(items[0][1], img)
    assert np.array_equal(items[-1][1], deblur(tiny_model, img, seed=6))  # z_0 = the prediction
    assert not np.array_equal(items[1][1], items[-1][1])  # the prior matters
    few = diffusion_trajectory(tiny_model, img, seed=6, steps=2)
    assert [label for label, _ in few] == ['blurry input', 'z_8 (noise)', 'z_1', 'z_0']
    assert np.array_equal(few[-1][1], deblur(tiny_model, img, seed=6, steps=2))
    grid = labelled_grid(items, cols=4, gap=4)
    band = (grid.shape[0] - 4 * 4) // 3 - 21
    assert grid.shape == (3 * (band + 21) + 4 * 4, 4 * 35 + 5 * 4, 3) and band > 5
    # the label band above each panel has dark text pixels
    assert (grid[4:4 + band, 4:4 + 35] < 128).any()
    with pytest.raises(ValueError, match='same size'):
        labelled_grid([('a', img), ('b', img[:-1])])


TRAJECTORY_CASES = [
    (dict(), None),
    (dict(steps=3), None),
    (dict(tile=16, overlap=8), None),
    (dict(tile=16, overlap=0, steps=2), None),
    (dict(self_ensemble=True, steps=2), None),
    (dict(self_ensemble=True, tile=16, overlap=8, steps=2), None),
    (dict(tile=16, overlap=8, steps=3), dict(type='ddim', eta=0.5)),
    (dict(self_ensemble=True, steps=3), 'dpmsolver++'),
]


@pytest.mark.parametrize('options,sampler', TRAJECTORY_CASES)
def test_trajectory_ends_in_the_prediction(tiny_model, options, sampler):
    """Under every option and sampler, the last frame is deblur's output bit for bit (each
    frame is the prediction made with that prior: tiles, self-ensemble and all)."""
    scheduler = tiny_model.prior_head.scheduler
    default = scheduler.settings()['sampler']
    if sampler is not None:
        scheduler.set_sampler(sampler)
    try:
        img = smooth_image(9, 21, 35)
        items = diffusion_trajectory(tiny_model, img, seed=4, **options)
        expected = deblur(tiny_model, img, seed=4, **options)
    finally:
        scheduler.set_sampler(default)
    assert len(items) == (options.get('steps') or 8) + 2 and items[-1][0] == 'z_0'
    assert np.array_equal(items[-1][1], expected)
    assert not np.array_equal(items[1][1], items[-1][1])


def test_trajectory_follows_the_config_test_cfg(tiny_files):
    """Options left out come from the model's test_cfg, as for deblur."""
    from hidiff_mm.apis import init_model
    config, checkpoint = tiny_files
    model = init_model(config, checkpoint,
                       cfg_options={'model.test_cfg': dict(tile=16, tile_overlap=8, steps=2)})
    img = smooth_image(10, 30, 33)
    items = diffusion_trajectory(model, img, seed=1)
    assert [label for label, _ in items] == ['blurry input', 'z_8 (noise)', 'z_1', 'z_0']
    assert np.array_equal(items[-1][1], deblur(model, img, seed=1))
    assert not np.array_equal(items[-1][1], deblur(model, img, seed=1, tile=48))


def test_visualize_tool(visualize, tiny_files, tmp_path, capsys):
    config, checkpoint = tiny_files
    blurry, sharp = smooth_image(7, 32, 48), smooth_image(8, 32, 48)
    cv2.imwrite(str(tmp_path / 'blur.png'), blurry)
    cv2.imwrite(str(tmp_path / 'sharp.png'), sharp)
    out = tmp_path / 'vis' / 'grid.png'
    assert visualize.main([str(tmp_path / 'blur.png'), '--config', config, '--checkpoint',
                           checkpoint, '--out', str(out), '--gt', str(tmp_path / 'sharp.png'),
                           '--cols', '6']) == 0
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[1] == 6 * 48 + 7 * 4  # 11 panels: 2 rows of 6
    assert 'sharp (GT)' in capsys.readouterr().out
    torch.manual_seed(0)  # the tool seeds z_T itself (default 100): same output again
    assert visualize.main([str(tmp_path / 'blur.png'), '--config', config, '--checkpoint',
                           checkpoint, '--out', str(tmp_path / 'again.png'), '--gt',
                           str(tmp_path / 'sharp.png'), '--cols', '6']) == 0
    assert np.array_equal(cv2.imread(str(tmp_path / 'again.png')), grid)
    # the options reach the prediction: the last panel is what demo.py writes with them
    assert visualize.main([str(tmp_path / 'blur.png'), '--config', config, '--checkpoint',
                           checkpoint, '--out', str(tmp_path / 'tiled.png'), '--cols', '1',
                           '--seed', '2', '--steps', '2', '--tile', '16', '--overlap', '8',
                           '--self-ensemble']) == 0
    tiled = cv2.imread(str(tmp_path / 'tiled.png'))
    last = tiled[-(4 + 32):-4, 4:4 + 48]
    expected = deblur(visualize.init_model(config, checkpoint), tmp_path / 'blur.png', seed=2,
                      steps=2, tile=16, overlap=8, self_ensemble=True)
    assert np.array_equal(last, expected)
