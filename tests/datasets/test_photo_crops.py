# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Training crops of packaged photographs, and identity pairs."""
import cv2
import numpy as np
import pytest

from hidiff_mm.datasets.photo_crops import TRAIN_PHOTOS, make_photo_crop, package_file, read_rgb
from hidiff_mm.datasets.photos import PHOTOS, SHARP_PHOTOS
from hidiff_mm.datasets.synthetic import make_blur_pair, make_split_pair


def test_training_photos_are_none_of_the_held_out_ones():
    def files(photos):
        return {package_file(package, relpath) for _, package, relpath in photos}

    train = files(TRAIN_PHOTOS)
    assert len(train) == len(TRAIN_PHOTOS)
    assert not train & files(PHOTOS) and not train & files(SHARP_PHOTOS)
    # no other view of a held-out scene either (motorcycle_left is held out)
    assert not any('motorcycle' in path for path in train)


def test_photo_crop_is_a_piece_of_a_training_photo():
    rng = np.random.default_rng(3)
    crop = make_photo_crop(rng, 48, scale_range=(1.0, 1.0))
    assert crop.shape == (48, 48, 3) and crop.dtype == np.float32
    assert 0 <= crop.min() and crop.max() <= 1
    # at scale 1 the crop is the photograph's pixels, possibly flipped and transposed
    patch = np.round(crop * 255).astype(np.uint8)
    found = False
    for _, package, relpath in TRAIN_PHOTOS:
        photo = read_rgb(package_file(package, relpath))
        for view in (patch, patch[:, ::-1], patch.transpose(1, 0, 2),
                     patch.transpose(1, 0, 2)[:, ::-1], patch[:, ::-1].transpose(1, 0, 2)):
            view = np.ascontiguousarray(view)
            match = cv2.matchTemplate(photo, view, cv2.TM_SQDIFF)
            found |= bool(match.min() == 0)
    assert found


def test_photo_crops_are_seeded_and_vary():
    a = make_photo_crop(np.random.default_rng(1), 32)
    b = make_photo_crop(np.random.default_rng(1), 32)
    c = make_photo_crop(np.random.default_rng(2), 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_identity_pairs():
    blurred, sharp = make_blur_pair(np.random.default_rng(0), 32, identity_prob=1.0)
    np.testing.assert_array_equal(blurred, sharp)
    pairs = [make_blur_pair(np.random.default_rng([5, i]), 32, identity_prob=0.5)
             for i in range(40)]
    identical = sum(np.array_equal(b, s) for b, s in pairs)
    assert 5 <= identical <= 35  # Binomial(40, 0.5): outside this range with p < 1e-4
    # without identity pairs no extra number is drawn: the sets written before are unchanged
    for a, b in zip(make_blur_pair(np.random.default_rng(9), 32),
                    make_blur_pair(np.random.default_rng(9), 32, identity_prob=0.0)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('identity_prob', [0.0, 0.5])
def test_cli_writes_photo_crops(tmp_path, load_tool, identity_prob):
    tool = load_tool('make_synthetic_blur.py')
    tool.main(['--out', str(tmp_path), '--scene', 'photo_crops', '--num-train', '3', '--num-val',
               '0', '--size', '32', '--seed', '4', '--kernel-sizes', '3', '31',
               '--identity-prob', str(identity_prob)])
    for index in range(3):
        expected = make_split_pair(4, 'train', index, 32, (3, 31), make_photo_crop, identity_prob)
        for folder, img in zip(('input', 'target'), expected):
            written = cv2.imread(str(tmp_path / 'train' / folder / f'{index:06d}.png'))
            np.testing.assert_array_equal(written[..., ::-1], img)
