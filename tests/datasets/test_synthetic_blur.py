# Copyright (c) hidiff_mm contributors. All rights reserved.
import numpy as np
import pytest

from hidiff_mm.datasets import PairedDeblurDataset
from hidiff_mm.datasets.dead_leaves import make_dead_leaves_image
from hidiff_mm.datasets.synthetic import (blur_image, make_blur_pair, make_sharp_image,
                                          random_shake_kernel)


def high_frequency_energy(img: np.ndarray) -> float:
    """Spectral energy above a quarter of the Nyquist radius, summed over channels."""
    spec = np.abs(np.fft.fftshift(np.fft.fft2(img, axes=(0, 1)), axes=(0, 1)))**2
    size = img.shape[0]
    yy, xx = np.mgrid[:size, :size] - size // 2
    return float(spec[np.hypot(yy, xx) > size / 8].sum())


@pytest.mark.parametrize('scene', [make_sharp_image, make_dead_leaves_image])
def test_sharp_image_deterministic_and_valid(scene):
    a = scene(np.random.default_rng(3), 64)
    b = scene(np.random.default_rng(3), 64)
    c = scene(np.random.default_rng(4), 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize('size', [9, 15, 31])
def test_kernel_normalised_centred_deterministic(size):
    for seed in range(10):
        kernel = random_shake_kernel(np.random.default_rng(seed), size)
        assert kernel.shape == (size, size) and kernel.dtype == np.float32
        assert kernel.min() >= 0
        assert kernel.sum() == pytest.approx(1, abs=1e-5)
        yy, xx = np.mgrid[:size, :size]
        centre = (size - 1) / 2
        assert abs((kernel * yy).sum() - centre) < 0.5
        assert abs((kernel * xx).sum() - centre) < 0.5
        assert (kernel > 0).sum() > 4  # a trajectory, not a delta
        again = random_shake_kernel(np.random.default_rng(seed), size)
        np.testing.assert_array_equal(kernel, again)
    assert not np.array_equal(random_shake_kernel(np.random.default_rng(0), size),
                              random_shake_kernel(np.random.default_rng(1), size))


@pytest.mark.parametrize('size', [8, 1])
def test_kernel_size_must_be_odd(size):
    with pytest.raises(ValueError, match='odd'):
        random_shake_kernel(np.random.default_rng(0), size)


def test_blur_is_a_true_convolution():
    img = np.random.default_rng(0).random((12, 12, 3)).astype(np.float32)
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1
    np.testing.assert_allclose(blur_image(img, delta), img, atol=1e-6)
    shift = np.zeros((5, 5), np.float32)
    shift[2, 3] = 1  # right of the centre: the image moves one pixel to the right
    np.testing.assert_allclose(blur_image(img, shift)[:, 1:], img[:, :-1], atol=1e-6)


def test_blur_reduces_high_frequencies():
    for seed in range(8):
        rng = np.random.default_rng(seed)
        sharp = make_sharp_image(rng, 96)
        blurred = blur_image(sharp, random_shake_kernel(rng, 15))
        assert high_frequency_energy(blurred) < 0.5 * high_frequency_energy(sharp)


def test_noise_needs_rng_and_is_added():
    img = np.full((16, 16, 3), 0.5, np.float32)
    kernel = random_shake_kernel(np.random.default_rng(0), 9)
    with pytest.raises(ValueError, match='rng'):
        blur_image(img, kernel, noise_sigma=0.01)
    noisy = blur_image(img, kernel, noise_sigma=0.01, rng=np.random.default_rng(0))
    assert 0.005 < float(np.std(noisy)) < 0.015


def test_blur_pair_is_uint8_and_deterministic():
    blurred, sharp = make_blur_pair(np.random.default_rng(5), 48)
    again = make_blur_pair(np.random.default_rng(5), 48)
    assert blurred.shape == sharp.shape == (48, 48, 3) and blurred.dtype == np.uint8
    np.testing.assert_array_equal(blurred, again[0])
    np.testing.assert_array_equal(sharp, again[1])
    assert not np.array_equal(blurred, sharp)


def test_cli_writes_gopro_layout_byte_identically(tmp_path, load_tool):
    tool = load_tool('make_synthetic_blur.py')
    args = ['--num-train', '3', '--num-val', '2', '--size', '32']
    for out, seed in (('a', '7'), ('b', '7'), ('c', '8')):
        tool.main(['--out', str(tmp_path / out), '--seed', seed] + args)

    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.png'))
    assert [str(f) for f in files] == [
        f'{split}/{side}/{i:06d}.png' for split, num in (('test', 2), ('train', 3))
        for side in ('input', 'target') for i in range(num)
    ]
    for f in files:
        assert (tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' / f).read_bytes()
    assert all((tmp_path / 'a' / f).read_bytes() != (tmp_path / 'c' / f).read_bytes()
               for f in files)
    train = PairedDeblurDataset(data_root=str(tmp_path / 'a' / 'train'))
    assert len(train) == 3
