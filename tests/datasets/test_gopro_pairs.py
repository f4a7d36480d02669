# Copyright (c) hidiff_mm contributors. All rights reserved.
"""tools/dataset_converters/gopro_patches.py pairs the frames as PairedDeblurDataset does, without
importing it (the tool needs no MMagic)."""
import re

import pytest

from hidiff_mm.datasets import PairedDeblurDataset

TOOL = 'dataset_converters/gopro_patches.py'


def test_pairs_are_the_datasets(tmp_path, make_pairs, load_tool):
    make_pairs(tmp_path, ['b.png', 'a.png', 'c.JPG', 'd.tif'])
    for folder in ('input', 'target'):
        (tmp_path / folder / 'notes.txt').write_text('not an image')
        (tmp_path / folder / 'sub.png').mkdir()
    dataset = PairedDeblurDataset(data_root=str(tmp_path))
    expected = [(dataset.get_data_info(i)['img_path'], dataset.get_data_info(i)['gt_path'])
                for i in range(len(dataset))]
    assert load_tool(TOOL).list_pairs(str(tmp_path)) == expected
    assert len(expected) == 4


def test_pairing_errors_name_the_files(tmp_path, make_pairs, load_tool):
    list_pairs = load_tool(TOOL).list_pairs
    make_pairs(tmp_path, ['a.png', 'b.png'])
    (tmp_path / 'target' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"Missing partner of '{tmp_path}/input/b.png'")):
        list_pairs(str(tmp_path))
    for name in ('a.png', 'b.png'):
        (tmp_path / 'input' / name).unlink()
    with pytest.raises(ValueError, match=re.escape(f"'{tmp_path}/input' holds no images")):
        list_pairs(str(tmp_path))
