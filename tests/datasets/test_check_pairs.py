"""tools/dataset_converters/check_pairs.py: problems one line each, then the training layout."""
import os
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = runpy.run_path(osp.join(REPO, 'tools', 'dataset_converters', 'check_pairs.py'))


def write_image(path: str, height: int, width: int, seed: int = 0) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(osp.splitext(path)[1], image)
    assert ok
    data.tofile(path)


def make_folders(root, pairs):
    """pairs: (blurry name or None, sharp name or None, (h, w) blurry, (h, w) sharp)."""
    blurry, sharp = str(root / 'blurry'), str(root / 'sharp')
    os.makedirs(blurry)
    os.makedirs(sharp)
    for i, (b, s, bsize, ssize) in enumerate(pairs):
        if b:
            write_image(osp.join(blurry, b), *bsize, seed=i)
        if s:
            write_image(osp.join(sharp, s), *ssize, seed=100 + i)
    return blurry, sharp


def run(capsys, *args):
    code = TOOL['main']([str(a) for a in args])
    return code, capsys.readouterr().out.splitlines()


def test_every_problem_is_one_line_and_nothing_is_written(tmp_path, capsys):
    blurry, sharp = make_folders(tmp_path, [
        ('good.png', 'good.png', (40, 40), (40, 40)),
        ('only blurry.jpg', None, (40, 40), None),
        (None, 'only_sharp.png', None, (40, 40)),
        ('ext.png', 'ext.jpg', (40, 40), (40, 40)),
        ('sizes.png', 'sizes.png', (40, 48), (48, 40)),
        ('tiny.png', 'tiny.png', (40, 20), (40, 20)),
    ])
    with open(osp.join(blurry, 'broken.png'), 'wb') as f:
        f.write(b'not an image')
    write_image(osp.join(sharp, 'broken.png'), 40, 40)
    open(osp.join(blurry, 'notes.txt'), 'w').close()
    out = tmp_path / 'out'
    code, lines = run(capsys, blurry, sharp, '--min-size', 32, '--out', out)
    assert code == 1 and not out.exists()
    problems = sorted(line for line in lines if line.split(':')[0] in
                      ('unpaired', 'unreadable', 'size', 'small'))
    assert problems == sorted([
        f'unpaired: {blurry}/only blurry.jpg: no only blurry.jpg in {sharp}',
        f'unpaired: {sharp}/only_sharp.png: no only_sharp.png in {blurry}',
        f'unpaired: {blurry}/ext.png: no ext.png in {sharp} (there is ext.jpg: rename one)',
        f'unpaired: {sharp}/ext.jpg: no ext.jpg in {blurry} (there is ext.png: rename one)',
        f'unreadable: {blurry}/broken.png: does not decode as an image',
        f'size: {blurry}/sizes.png is 48x40 but {sharp}/sizes.png is 40x48 (width x height)',
        f'small: {blurry}/tiny.png is 20x40, smaller than the 32x32 training crop (--min-size)',
    ])
    assert f'ignored: {blurry}: 1 file(s) not .png/.jpg/.jpeg/.bmp/.tif/.tiff/.ppm: notes.txt' \
        in lines
    assert lines[-1] == '1 good pair(s), 7 problem(s)'


def test_good_pairs_are_split_and_laid_out(tmp_path, capsys):
    names = ['IMG 0001.JPG', 'b.png', 'c.png', 'd.bmp', 'e.tif']
    blurry, sharp = make_folders(tmp_path, [(n, n, (40 + 8 * i, 48), (40 + 8 * i, 48))
                                            for i, n in enumerate(names)])
    out = tmp_path / 'own'
    code, lines = run(capsys, blurry, sharp, '--min-size', 32, '--out', out, '--val', 2)
    assert code == 0, lines
    assert lines[-1] == f'wrote 3 training and 2 validation pair(s) to {out}/' \
        '{train,val}/{input,target} (links)'
    layout = {split: sorted(os.listdir(out / split / 'input')) for split in ('train', 'val')}
    for split in ('train', 'val'):
        assert sorted(os.listdir(out / split / 'target')) == layout[split]
        for name in layout[split]:
            for sub, folder in (('input', blurry), ('target', sharp)):
                link = out / split / sub / name
                assert osp.islink(link) and osp.dirname(os.readlink(link)) == folder
    assert sorted(layout['train'] + layout['val']) == ['IMG 0001.jpg', 'b.png', 'c.png',
                                                       'd.bmp', 'e.tif']
    again, lines = run(capsys, blurry, sharp, '--min-size', 32, '--out', out)
    assert again == 1 and lines[-1].startswith('not written:')
    # the split is seeded
    other = tmp_path / 'own2'
    run(capsys, blurry, sharp, '--min-size', 32, '--out', other, '--val', 2, '--copy')
    assert sorted(os.listdir(other / 'val' / 'input')) == layout['val']
    assert not osp.islink(other / 'val' / 'input' / layout['val'][0])


def test_validation_folders_instead_of_a_split(tmp_path, capsys):
    blurry, sharp = make_folders(tmp_path, [(n, n, (40, 40), (40, 40)) for n in ('a.png', 'b.png')])
    val = tmp_path / 'val'
    val.mkdir()
    vb, vs = make_folders(val, [('v.png', 'v.png', (24, 24), (24, 24))])
    out = tmp_path / 'own'
    code, lines = run(capsys, blurry, sharp, '--min-size', 32, '--out', out, '--val-dirs', vb, vs)
    assert code == 0 and lines[0] == '2 good pair(s), 0 problem(s); validation: 1 good pair(s)'
    assert os.listdir(out / 'val' / 'target') == ['v.png']
    assert sorted(os.listdir(out / 'train' / 'input')) == ['a.png', 'b.png']


@pytest.mark.parametrize('val', [0, 2, 0.01])
def test_a_split_needs_a_pair_on_each_side(tmp_path, capsys, val):
    blurry, sharp = make_folders(tmp_path, [(n, n, (40, 40), (40, 40)) for n in ('a.png', 'b.png')])
    code, lines = run(capsys, blurry, sharp, '--min-size', 32, '--out', tmp_path / 'o',
                      '--val', val)
    assert code == 1 and 'it needs at least 1 and leaves at least 1 for training' in lines[-1]
    assert not (tmp_path / 'o').exists()
