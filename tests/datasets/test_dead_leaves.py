# Copyright (c) hidiff_mm contributors. All rights reserved.
import cv2
import numpy as np

from hidiff_mm.datasets.dead_leaves import (make_dead_leaves_image, power_law_radii,
                                            power_spectrum_noise)
from hidiff_mm.datasets.synthetic import make_blur_pair, make_sharp_image, make_split_pair


def radial_power_slope(img: np.ndarray) -> float:
    """Least-squares slope of log power against log frequency (radially binned, grey image)."""
    grey = img.mean(axis=2) - img.mean()
    power = np.abs(np.fft.fft2(grey))**2
    freq = np.fft.fftfreq(grey.shape[0])
    radius = np.hypot(freq[:, None], freq[None, :])
    bands = np.geomspace(2 / grey.shape[0], 0.4, 12)
    centres, means = [], []
    for lo, hi in zip(bands[:-1], bands[1:]):
        ring = (radius >= lo) & (radius < hi)
        centres.append(np.sqrt(lo * hi))
        means.append(power[ring].mean())
    return float(np.polyfit(np.log(centres), np.log(means), 1)[0])


def test_radii_follow_the_inverse_cube_law():
    r_min, r_max = 2.0, 50.0
    radii = power_law_radii(np.random.default_rng(0), 200000, r_min, r_max)
    assert r_min <= radii.min() and radii.max() <= r_max
    # CDF of p(r) ~ r^-3 on [r_min, r_max]: (r_min^-2 - r^-2) / (r_min^-2 - r_max^-2)
    for r in (3.0, 5.0, 10.0, 30.0):
        expected = (r_min**-2 - r**-2) / (r_min**-2 - r_max**-2)
        assert abs((radii <= r).mean() - expected) < 0.005


def test_noise_field_has_the_requested_spectrum():
    field = power_spectrum_noise(np.random.default_rng(1), 128, beta=1.0)
    assert field.shape == (128, 128) and field.dtype == np.float32
    assert abs(float(field.mean())) < 1e-5 and abs(float(field.std()) - 1) < 1e-4
    # amplitude 1/f -> power 1/f^2
    slope = radial_power_slope(np.repeat(field[..., None], 3, axis=2))
    assert -2.3 < slope < -1.7


def test_dead_leaves_have_natural_spectra():
    """(Determinism and range: test_synthetic_blur.py, for every scene maker.)"""
    # Photographs have power spectra close to 1/f^2 (slopes about -1.6 to -3); the scenes
    # are scale invariant, unlike one flat gradient (a much steeper fall-off).
    slopes = [radial_power_slope(make_dead_leaves_image(np.random.default_rng(s), 128))
              for s in range(6)]
    assert all(-3.2 < s < -1.4 for s in slopes), slopes


def test_blur_pair_takes_the_scene_maker():
    leaves = make_blur_pair(np.random.default_rng(5), 48, scene=make_dead_leaves_image)
    shapes = make_blur_pair(np.random.default_rng(5), 48, scene=make_sharp_image)
    default = make_blur_pair(np.random.default_rng(5), 48)
    np.testing.assert_array_equal(shapes[1], default[1])
    np.testing.assert_array_equal(
        leaves[1], np.round(make_dead_leaves_image(np.random.default_rng(5), 48) * 255))
    assert leaves[0].dtype == np.uint8 and not np.array_equal(leaves[0], leaves[1])


def test_cli_writes_dead_leaves_scenes(tmp_path, load_tool):
    tool = load_tool('make_synthetic_blur.py')
    args = ['--num-train', '2', '--num-val', '1', '--size', '32', '--seed', '7']
    tool.main(['--out', str(tmp_path / 'leaves'), '--scene', 'dead_leaves'] + args)
    tool.main(['--out', str(tmp_path / 'shapes')] + args)
    for split, index in (('train', 1), ('test', 0)):
        written = cv2.imread(str(tmp_path / 'leaves' / split / 'target' / f'{index:06d}.png'))
        expected = make_split_pair(7, split, index, 32, (5, 17), make_dead_leaves_image)[1]
        np.testing.assert_array_equal(written[..., ::-1], expected)
        shapes = cv2.imread(str(tmp_path / 'shapes' / split / 'target' / f'{index:06d}.png'))
        assert not np.array_equal(written, shapes)
