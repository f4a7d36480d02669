# Copyright (c) hidiff_mm contributors. All rights reserved.
import re

import numpy as np
import pytest
import torch
from mmagic.registry import TRANSFORMS
from mmengine.dataset import Compose

from hidiff_mm.datasets import LoadImagePair, RandomDihedral
from hidiff_mm.utils.dihedral import dihedral, dihedral_inverse

# The official ``data_augmentation(image, mode)`` branches, written out one by one.
EXPECTED = [
    lambda a: a,
    lambda a: np.flipud(a),
    lambda a: np.rot90(a),
    lambda a: np.flipud(np.rot90(a)),
    lambda a: np.rot90(a, k=2),
    lambda a: np.flipud(np.rot90(a, k=2)),
    lambda a: np.rot90(a, k=3),
    lambda a: np.flipud(np.rot90(a, k=3)),
]


def test_dihedral_matches_official_modes_for_arrays_and_tensors():
    img = np.arange(2 * 3 * 3).reshape(2, 3, 3)  # (H, W, C)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    outputs = []
    for flag, expected in enumerate(EXPECTED):
        out = dihedral(img, flag, axes=(0, 1))
        np.testing.assert_array_equal(out, expected(img))
        np.testing.assert_array_equal(dihedral_inverse(out, flag, axes=(0, 1)), img)
        tensor = dihedral(chw, flag)  # (C, H, W): the last two axes by default
        assert torch.equal(tensor.permute(1, 2, 0), torch.from_numpy(expected(img).copy()))
        assert torch.equal(dihedral_inverse(tensor, flag), chw)
        outputs.append(out.tobytes() + bytes(out.shape))
    assert len(set(outputs)) == 8
    # rot90 is counter-clockwise: the top-right pixel becomes the top-left one
    np.testing.assert_array_equal(dihedral(img, 2, axes=(0, 1))[0, 0], img[0, -1])
    with pytest.raises(ValueError, match='8'):
        dihedral(img, 8)


def test_random_dihedral_same_op_on_all_keys_from_np_random():
    img = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    transform = TRANSFORMS.build(dict(type='RandomDihedral', keys=['img', 'gt']))
    seen = set()
    for seed in range(64):
        np.random.seed(seed)
        flag = np.random.randint(8)
        np.random.seed(seed)
        out = transform(dict(img=img, gt=255 - img, other=img))
        np.testing.assert_array_equal(out['img'], EXPECTED[flag](img))
        np.testing.assert_array_equal(out['gt'], EXPECTED[flag](255 - img))
        assert out['other'] is img
        seen.add(flag)
    assert seen == set(range(8))


def test_random_dihedral_is_uniform():
    np.random.seed(1)
    transform = RandomDihedral(keys=['img'])
    img = np.arange(6).reshape(2, 3, 1)
    outs = [transform(dict(img=img))['img'] for _ in range(4000)]
    counts = [sum(np.array_equal(o, op(img)) for o in outs) for op in EXPECTED]
    assert sum(counts) == 4000
    assert all(400 < c < 600 for c in counts), counts  # 500 expected, sd ~21


def test_load_image_pair_reuses_mmagic_loader(tmp_path, write_rgb):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_rgb(tmp_path / 'in.png', img)
    write_rgb(tmp_path / 'gt.png', 255 - img)
    load = LoadImagePair(keys=['img', 'gt'], channel_order='rgb', imdecode_backend='cv2')
    out = load(dict(img_path=str(tmp_path / 'in.png'), gt_path=str(tmp_path / 'gt.png')))
    np.testing.assert_array_equal(out['img'], img)
    np.testing.assert_array_equal(out['gt'], 255 - img)
    assert out['ori_img_shape'] == out['ori_gt_shape'] == (5, 7, 3)
    assert out['img_channel_order'] == 'rgb' and out['gt_color_type'] == 'color'


@pytest.mark.parametrize('channel_order', ['rgb', 'bgr'])
@pytest.mark.parametrize('content', [b'', b'not an image', b'\x89PNG\r\n\x1a\n truncated'],
                         ids=['empty', 'garbage', 'truncated'])
def test_load_image_pair_names_unreadable_file(tmp_path, write_rgb, content, channel_order):
    write_rgb(tmp_path / 'in.png', np.zeros((4, 4, 3), np.uint8))
    (tmp_path / 'gt.png').write_bytes(content)
    load = LoadImagePair(channel_order=channel_order, imdecode_backend='cv2')
    with pytest.raises(ValueError, match=re.escape(f"Cannot read image '{tmp_path / 'gt.png'}'")):
        load(dict(img_path=str(tmp_path / 'in.png'), gt_path=str(tmp_path / 'gt.png')))


def test_load_image_pair_missing_file(tmp_path, write_rgb):
    write_rgb(tmp_path / 'in.png', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'gone.png'))):
        LoadImagePair()(dict(img_path=str(tmp_path / 'in.png'), gt_path=str(tmp_path / 'gone.png')))


def test_load_image_pair_size_mismatch(tmp_path, write_rgb):
    write_rgb(tmp_path / 'in.png', np.zeros((4, 6, 3), np.uint8))
    write_rgb(tmp_path / 'gt.png', np.zeros((6, 4, 3), np.uint8))
    with pytest.raises(ValueError) as err:
        LoadImagePair()(dict(img_path=str(tmp_path / 'in.png'), gt_path=str(tmp_path / 'gt.png')))
    assert f"'{tmp_path / 'in.png'}' is 4x6" in str(err.value)
    assert f"'{tmp_path / 'gt.png'}' is 6x4" in str(err.value)


def test_paired_crop_and_dihedral_keep_pairs_aligned(tmp_path, write_rgb):
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    write_rgb(tmp_path / 'in.png', img)
    write_rgb(tmp_path / 'gt.png', 255 - img)
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='LoadImagePair', channel_order='rgb', imdecode_backend='cv2'),
            dict(type='SetValues', dictionary=dict(scale=1)),
            dict(type='PairedRandomCrop', gt_patch_size=8),
            dict(type='RandomDihedral', keys=['img', 'gt']),
        ]
    ])
    np.random.seed(0)
    corners = set()
    for _ in range(20):
        out = pipeline(dict(img_path=str(tmp_path / 'in.png'), gt_path=str(tmp_path / 'gt.png')))
        assert out['img'].shape == out['gt'].shape == (8, 8, 3)
        np.testing.assert_array_equal(out['gt'], 255 - out['img'])
        # the crop is a window of the frame, up to the dihedral transform
        windows = [img[t:t + 8, x:x + 8] for t in range(13) for x in range(23)]
        matches = [i for i, w in enumerate(windows)
                   if any(np.array_equal(out['img'], op(w)) for op in EXPECTED)]
        assert len(matches) == 1
        corners.add(matches[0])
    assert len(corners) > 10
