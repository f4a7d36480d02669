# Copyright (c) hidiff_mm contributors. All rights reserved.
import os
import re

import cv2
import numpy as np
import pytest

from hidiff_mm.datasets.patches import Crop, patch_offsets, train_crops, val_crops, write_png_atomic

TOOL = 'dataset_converters/gopro_patches.py'
SMALL = ['--patch-size', '16', '--stride', '8', '--val-size', '8']


def test_official_offsets():
    assert patch_offsets(720) == [0, 208]
    assert patch_offsets(1280) == [0, 256, 512, 768]
    assert patch_offsets(512) == [0]
    assert patch_offsets(1024) == [0, 256, 512]  # L - 512 = 512 is not repeated
    assert patch_offsets(40, 16, 8) == [0, 8, 16, 24]
    with pytest.raises(ValueError, match='smaller than the patch size'):
        patch_offsets(500)
    with pytest.raises(ValueError, match='positive'):
        patch_offsets(720, stride=0)


def test_official_gopro_frame_gives_8_patches():
    crops = train_crops('GOPR0372_07_00-000047', 720, 1280)
    assert crops == [
        Crop(f'GOPR0372_07_00-000047-{k}.png', top, left, 512)
        for k, (top, left) in enumerate([(0, 0), (0, 256), (0, 512), (0, 768),
                                         (208, 0), (208, 256), (208, 512), (208, 768)], 1)
    ]
    assert val_crops('x', 720, 1280) == [Crop('x.png', 232, 512, 256)]
    assert val_crops('x', 11, 12, 4) == [Crop('x.png', 3, 4, 4)]
    with pytest.raises(ValueError, match='smaller than the crop size'):
        val_crops('x', 100, 300)


def test_write_png_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    write_png_atomic(str(tmp_path / 'a.png'), img)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'a.png')), img)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_png_atomic(str(tmp_path / 'b.png'), img)
    assert not (tmp_path / 'b.png').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png']  # no temporary file left


def make_gopro(root, make_pairs, extra_level=False):
    """Three 40x56 training pairs and two 20x30 test pairs."""
    train = make_pairs(root / 'train', ['GOPR0001-000001.png', 'GOPR0001-000002.png',
                                        'GOPR0002-000001.png'], hw=(40, 56))
    test_root = root / 'test' / 'GoPro' if extra_level else root / 'test'
    test = make_pairs(test_root, ['GOPR0003-000001.png', 'GOPR0003-000002.png'], hw=(20, 30))
    return train, test


@pytest.mark.parametrize('workers', ['1', '2'])
@pytest.mark.parametrize('extra_level', [False, True])
def test_conversion_writes_exact_crops(tmp_path, make_pairs, load_tool, workers, extra_level):
    train, test = make_gopro(tmp_path, make_pairs, extra_level)
    load_tool(TOOL).main(['--root', str(tmp_path), '--workers', workers] + SMALL)

    out = tmp_path / 'crop' / 'train'
    tops, lefts = [0, 8, 16, 24], [0, 8, 16, 24, 32, 40]
    for name, (blurred, sharp) in train.items():
        stem = name[:-4]
        for k, (top, left) in enumerate([(t, x) for t in tops for x in lefts], 1):
            for sub, frame in (('input_crops', blurred), ('target_crops', sharp)):
                patch = cv2.imread(str(out / sub / f'{stem}-{k}.png'))[..., ::-1]
                np.testing.assert_array_equal(patch, frame[top:top + 16, left:left + 16])
    assert len(os.listdir(out / 'input_crops')) == len(os.listdir(out / 'target_crops')) == 72

    out = tmp_path / 'crop' / 'val'
    for name, (blurred, sharp) in test.items():
        for sub, frame in (('input_crops', blurred), ('target_crops', sharp)):
            patch = cv2.imread(str(out / sub / name))[..., ::-1]
            np.testing.assert_array_equal(patch, frame[6:14, 11:19])
    assert sorted(os.listdir(out / 'target_crops')) == sorted(test)


def test_rerun_skips_existing_crops(tmp_path, make_pairs, load_tool, capsys):
    make_gopro(tmp_path, make_pairs)
    tool = load_tool(TOOL)
    tool.main(['--root', str(tmp_path), '--workers', '1'] + SMALL)
    crops = sorted(p for p in (tmp_path / 'crop').rglob('*') if p.is_file())
    for p in crops:  # an old, distinct mtime, so that any rewrite shows
        os.utime(p, ns=(10**18, 10**18))
    removed = tmp_path / 'crop' / 'train' / 'target_crops' / 'GOPR0002-000001-5.png'
    removed.unlink()
    capsys.readouterr()

    tool.main(['--root', str(tmp_path), '--workers', '1'] + SMALL)

    assert sorted(p for p in (tmp_path / 'crop').rglob('*') if p.is_file()) == crops  # no tmp
    rewritten = {p for p in crops if p.stat().st_mtime_ns != 10**18}
    assert rewritten <= {removed, removed.parent.parent / 'input_crops' / removed.name}
    assert removed in rewritten
    log = capsys.readouterr().out
    assert 'train: 3 frames' in log and '1 crop pairs written, 71 already there' in log
    assert 'val: 2 frames' in log and '0 crop pairs written, 2 already there' in log


def test_missing_root_and_folders(tmp_path, make_pairs, load_tool):
    tool = load_tool(TOOL)
    with pytest.raises(FileNotFoundError, match='GoPro root .*nowhere'):
        tool.main(['--root', str(tmp_path / 'nowhere')])
    make_pairs(tmp_path / 'train', ['a.png'], hw=(40, 56))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'test' / 'input'))):
        tool.main(['--root', str(tmp_path)] + SMALL)
    assert not (tmp_path / 'crop').exists()  # both splits are checked before writing


def test_frame_errors_name_the_files(tmp_path, make_pairs, load_tool):
    make_pairs(tmp_path / 'train', ['a.png'], hw=(12, 56))
    make_pairs(tmp_path / 'test', ['b.png'], hw=(20, 30))
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match=re.escape(f"Cannot crop '{tmp_path}/train/input/a.png'")
                       + '.*smaller than the patch size 16'):
        tool.main(['--root', str(tmp_path), '--workers', '1'] + SMALL)

    make_pairs(tmp_path / 'train', ['a.png'], hw=(40, 56))
    make_pairs(tmp_path / 'train', ['a.png'], hw=(40, 50), prefix=('unused', 'target'))
    with pytest.raises(ValueError, match='differ in size') as err:
        tool.main(['--root', str(tmp_path), '--workers', '1'] + SMALL)
    assert f"'{tmp_path}/train/input/a.png' is 40x56" in str(err.value)
    assert f"'{tmp_path}/train/target/a.png' is 40x50" in str(err.value)
