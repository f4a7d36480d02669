# Copyright (c) hidiff_mm contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest

from hidiff_mm.datasets import PairedDeblurDataset

LOAD = dict(type='LoadImagePair', keys=['img', 'gt'], color_type='color', channel_order='rgb',
            imdecode_backend='cv2')

# (data_root relative to the dataset folder, input folder, target folder) of every published layout
LAYOUTS = [
    ('GoPro/train', 'input', 'target'),
    ('GoPro/test', 'input', 'target'),
    ('GoPro/test/GoPro', 'input', 'target'),
    ('GoPro/crop/train', 'input_crops', 'target_crops'),
    ('GoPro/crop/val', 'input_crops', 'target_crops'),
    ('test/GoPro', 'input', 'target'),
    ('test/HIDE', 'input', 'target'),
    ('test/RealBlur_J', 'input', 'target'),
    ('test/RealBlur_R', 'input', 'target'),
    ('RealBlur/train/RealBlur_J', 'input', 'target'),
    ('RealBlur/train/RealBlur_R', 'input', 'target'),
    ('RealBlur/test/RealBlur_J', 'input', 'target'),
    ('RealBlur/test/RealBlur_R', 'input', 'target'),
]


@pytest.mark.parametrize('layout', LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_layout_yields_sorted_correct_pairs(tmp_path, make_pairs, layout):
    sub, img_dir, gt_dir = layout
    root = tmp_path / sub
    names = ['scene2-7.png', 'GOPR0384_11_00-000001.png', 'a.png']
    pairs = make_pairs(root, names, prefix=(img_dir, gt_dir))
    (root / img_dir / 'notes.txt').write_text('not an image')
    (root / gt_dir / 'notes.txt').write_text('not an image')

    dataset = PairedDeblurDataset(
        data_root=str(root), data_prefix=dict(img=img_dir, gt=gt_dir), pipeline=[LOAD])

    assert len(dataset) == 3
    for idx, name in enumerate(sorted(names)):
        sample = dataset[idx]
        assert sample['key'] == osp.splitext(name)[0]
        assert sample['img_path'] == osp.join(str(root), img_dir, name)
        assert sample['gt_path'] == osp.join(str(root), gt_dir, name)
        np.testing.assert_array_equal(sample['img'], pairs[name][0])
        np.testing.assert_array_equal(sample['gt'], pairs[name][1])
        assert sample['img_channel_order'] == sample['gt_channel_order'] == 'rgb'


def test_default_prefix_and_metainfo(tmp_path, make_pairs):
    make_pairs(tmp_path, ['x.png'])
    dataset = PairedDeblurDataset(data_root=str(tmp_path))
    assert dataset.data_prefix == dict(img=str(tmp_path / 'input'), gt=str(tmp_path / 'target'))
    assert dataset.metainfo['task_name'] == 'deblurring'
    assert dataset.get_data_info(0)['gt_path'] == str(tmp_path / 'target' / 'x.png')


def test_missing_folder(tmp_path, make_pairs):
    make_pairs(tmp_path, ['x.png'])
    with pytest.raises(FileNotFoundError, match='target_crops.*does not exist'):
        PairedDeblurDataset(data_root=str(tmp_path), data_prefix=dict(img='input',
                                                                      gt='target_crops'))


def test_empty_folder(tmp_path, make_pairs):
    make_pairs(tmp_path, ['x.png'])
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match=f"'{tmp_path / 'empty'}'.*no images"):
        PairedDeblurDataset(data_root=str(tmp_path), data_prefix=dict(img='empty', gt='target'))


def test_different_counts(tmp_path, make_pairs):
    make_pairs(tmp_path, ['x.png', 'y.png'])
    make_pairs(tmp_path, ['only_in_input.png'], prefix=('input', 'elsewhere'))
    with pytest.raises(ValueError, match="different numbers.*'.*input': 3 images.*"
                                         "only_in_input.png.*'.*target': 2 images"):
        PairedDeblurDataset(data_root=str(tmp_path))


@pytest.mark.parametrize('search_key', ['gt', 'img'])
def test_missing_partner_names_both_paths(tmp_path, make_pairs, search_key):
    make_pairs(tmp_path, ['a.png'])
    make_pairs(tmp_path, ['b.png'], prefix=('input', 'elsewhere'))
    make_pairs(tmp_path, ['c.png'], prefix=('elsewhere', 'target'))
    found, missing = (('target', 'input') if search_key == 'gt' else ('input', 'target'))
    name = 'c.png' if search_key == 'gt' else 'b.png'
    with pytest.raises(FileNotFoundError) as err:
        PairedDeblurDataset(data_root=str(tmp_path), search_key=search_key)
    assert f"'{tmp_path / found / name}'" in str(err.value)
    assert f"expected '{tmp_path / missing / name}'" in str(err.value)


def test_unreadable_image_is_named_at_read_time(tmp_path, make_pairs):
    make_pairs(tmp_path, ['a.png', 'b.png'])
    (tmp_path / 'target' / 'b.png').write_bytes(b'\x89PNG truncated')
    dataset = PairedDeblurDataset(data_root=str(tmp_path), pipeline=[LOAD])
    dataset[0]
    with pytest.raises(ValueError, match=f"Cannot read image '{tmp_path / 'target' / 'b.png'}'"):
        dataset[1]


def test_size_mismatch_is_named_at_read_time(tmp_path, make_pairs):
    make_pairs(tmp_path, ['a.png'], hw=(16, 24))
    make_pairs(tmp_path, ['a.png'], hw=(16, 20), prefix=('unused', 'target'))
    dataset = PairedDeblurDataset(data_root=str(tmp_path), pipeline=[LOAD], test_mode=True)
    with pytest.raises(ValueError) as err:
        dataset[0]
    message = str(err.value)
    assert f"'{tmp_path / 'input' / 'a.png'}' is 16x24" in message
    assert f"'{tmp_path / 'target' / 'a.png'}' is 16x20" in message
