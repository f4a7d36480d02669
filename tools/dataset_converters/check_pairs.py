# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Check a folder of blurry photos against a folder of their sharp partners, then lay them out
for training (``configs/hidiff_finetune_own_data.py``) with a validation split.

A pair is two files with the same name, one in each folder (any names, any sizes, PNG / JPEG /
BMP / TIFF / PPM). Every problem is reported on one line, and nothing is written while there is
one:

* ``unpaired``: a file without a partner of the same name (a partner whose name differs only
  in the extension is named);
* ``unreadable``: a file that does not decode as an image;
* ``size``: blurry and sharp differ in width or height;
* ``small``: a pair smaller than ``--min-size`` (the training crop) on a side.

With ``--out``, the pairs are linked (or copied, ``--copy``) into ``OUT/train/{input,target}``
and ``OUT/val/{input,target}`` under their names with the extension in lower case: a random
``--val`` part of them (a fraction below 1, or a number of pairs; at least one; ``--seed``) is
the validation set, or the pairs of ``--val-dirs BLURRY SHARP`` (checked alike, any size) are.
Without ``--out`` the folders are only checked. Exit status: 0 when every pair is fine, 1
otherwise.

Example::

    python tools/dataset_converters/check_pairs.py my_photos/blurry my_photos/sharp \\
        --out data/own --val 0.1
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('blurry', help='folder of blurry photos')
    parser.add_argument('sharp', help='folder of their sharp partners (same file names)')
    parser.add_argument('--out', help='write OUT/{train,val}/{input,target} (else only check)')
    parser.add_argument('--val', type=float, default=0.1,
                        help='validation pairs: a fraction (< 1) or a number (>= 1); default 0.1')
    parser.add_argument('--val-dirs', nargs=2, metavar=('BLURRY', 'SHARP'),
                        help='validate on these paired folders instead of a split')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split (default 0)')
    parser.add_argument('--min-size', type=int, default=256,
                        help='smallest side a pair may have: the training crop (default 256)')
    parser.add_argument('--copy', action='store_true', help='copy the files instead of linking')
    return parser.parse_args(argv)


def list_images(folder: str) -> Tuple[Dict[str, str], List[str]]:
    """(name -> path of each image directly in ``folder``, names of the other files)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder}: no such folder')
    images, others = {}, []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if not osp.isfile(path):
            continue
        if osp.splitext(name)[1].lower() in EXTENSIONS:
            images[name] = path
        else:
            others.append(name)
    return images, others


def image_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) of the image at ``path``, or None when it does not decode."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    return None if image is None else image.shape[:2]


def check_pairs(blurry: str, sharp: str,
                min_size: int) -> Tuple[Dict[str, Tuple[str, str]], List[str], List[str]]:
    """Check two paired folders.

    Returns:
        name -> (blurry path, sharp path) of the good pairs, one line per problem, one line per
        folder with files that are not images (ignored).
    """
    (blur, blur_other), (clear, clear_other) = list_images(blurry), list_images(sharp)
    notes = [f'ignored: {folder}: {len(other)} file(s) not {"/".join(EXTENSIONS)}: '
             f'{", ".join(other[:5])}{" ..." if len(other) > 5 else ""}'
             for folder, other in ((blurry, blur_other), (sharp, clear_other)) if other]
    problems = []
    for here, there, folder in ((blur, clear, sharp), (clear, blur, blurry)):
        stems = {osp.splitext(name)[0]: name for name in there}
        for name in sorted(set(here) - set(there)):
            near = stems.get(osp.splitext(name)[0])
            hint = f' (there is {near}: rename one)' if near else ''
            problems.append(f'unpaired: {here[name]}: no {name} in {folder}{hint}')
    good = {}
    for name in sorted(set(blur) & set(clear)):
        paths = (blur[name], clear[name])
        sizes = [image_size(path) for path in paths]
        if not all(sizes):
            problems += [f'unreadable: {path}: does not decode as an image'
                         for path, size in zip(paths, sizes) if not size]
        elif sizes[0] != sizes[1]:
            problems.append(f'size: {paths[0]} is {sizes[0][1]}x{sizes[0][0]} but {paths[1]} '
                            f'is {sizes[1][1]}x{sizes[1][0]} (width x height)')
        elif min(sizes[0]) < min_size:
            problems.append(f'small: {paths[0]} is {sizes[0][1]}x{sizes[0][0]}, smaller than '
                            f'the {min_size}x{min_size} training crop (--min-size)')
        else:
            good[name] = paths
    if not blur or not clear:
        problems.append(f'empty: {blurry if not blur else sharp}: no images')
    return good, problems, notes


def split_names(names: Sequence[str], val: float, seed: int) -> Tuple[List[str], List[str]]:
    """(train, validation) names: ``val`` is a fraction (< 1) or a number of pairs."""
    count = int(round(val * len(names))) if val < 1 else int(val)
    if not 0 < count < len(names):
        raise ValueError(f'--val {val:g} leaves {count} of {len(names)} pairs for validation; '
                         'it needs at least 1 and leaves at least 1 for training')
    order = np.random.default_rng(seed).permutation(len(names))
    chosen = {names[i] for i in order[:count]}
    return ([n for n in names if n not in chosen], [n for n in names if n in chosen])


def write_split(out: str, split: str, pairs: Dict[str, Tuple[str, str]], copy: bool) -> None:
    """Link (or copy) each pair into ``out/split/{input,target}``, extension in lower case."""
    for sub, index in (('input', 0), ('target', 1)):
        folder = osp.join(out, split, sub)
        os.makedirs(folder)
        for name, paths in pairs.items():
            stem, ext = osp.splitext(name)
            target = osp.join(folder, stem + ext.lower())
            source = osp.abspath(paths[index])
            if copy:
                shutil.copyfile(source, target)
            else:
                os.symlink(source, target)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    good, problems, notes = check_pairs(args.blurry, args.sharp, args.min_size)
    val = {}
    if args.val_dirs:
        val, val_problems, val_notes = check_pairs(*args.val_dirs, min_size=1)
        problems, notes = problems + val_problems, notes + val_notes
    for line in notes + problems:
        print(line)
    print(f'{len(good)} good pair(s), {len(problems)} problem(s)'
          + (f'; validation: {len(val)} good pair(s)' if args.val_dirs else ''))
    if problems or not good:
        return 1
    if args.out is None:
        return 0
    existing = [osp.join(args.out, s) for s in ('train', 'val')
                if osp.lexists(osp.join(args.out, s))]
    if existing:
        print(f'not written: {", ".join(existing)} exist(s); remove or choose another --out')
        return 1
    if not args.val_dirs:
        try:
            train_names, val_names = split_names(sorted(good), args.val, args.seed)
        except ValueError as error:
            print(f'not written: {error}')
            return 1
        val = {name: good[name] for name in val_names}
        good = {name: good[name] for name in train_names}
    write_split(args.out, 'train', good, args.copy)
    write_split(args.out, 'val', val, args.copy)
    print(f'wrote {len(good)} training and {len(val)} validation pair(s) to {args.out}/'
          '{train,val}/{input,target}' + (' (copies)' if args.copy else ' (links)'))
    return 0


if __name__ == '__main__':
    TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
    sys.path[:0] = [TOOLS, osp.dirname(TOOLS)]  # light_import, and hidiff_mm beside tools/
    from light_import import import_alone
    import_alone('utils.cli').run(main)
