# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Cut GoPro into the crops the official HI-Diff recipes train and validate on.

Reads ``<root>/train/{input,target}`` and writes ``patch_size`` patches every
``stride`` pixels (plus one flush with the far border) to
``<root>/crop/train/{input_crops,target_crops}/<stem>-<k>.png``; reads
``<root>/test/{input,target}`` (or the official extra level
``<root>/test/GoPro/{input,target}``) and writes one centred ``val_size`` crop
per frame to ``<root>/crop/val/{input_crops,target_crops}/<stem>.png``.
Defaults are the official ones (512, 256, 256): 2103 training frames of
720x1280 give 16,824 patches. Re-running skips crops that already exist;
crops are written atomically, so an interrupted run can simply be resumed.

Example::

    python tools/dataset_converters/gopro_patches.py --root data/GoPro --workers 4
"""
import argparse
import os
import os.path as osp
import sys
from contextlib import nullcontext
from functools import partial
from multiprocessing import Pool
from typing import List, Optional, Sequence, Tuple

from tqdm import tqdm

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/, for light_import
from light_import import import_alone  # noqa: E402

_patches = import_alone('datasets.patches')
CropPlan, crop_pair = _patches.CropPlan, _patches.crop_pair
train_crops, val_crops = _patches.train_crops, _patches.val_crops
_cli = import_alone('utils.cli')
run, user_input = _cli.run, _cli.user_input
#: The suffixes ``PairedDeblurDataset`` lists by default (MMagic's ``IMG_EXTENSIONS``).
IMAGE_SUFFIXES = tuple(suffix for ext in ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff')
                       for suffix in (ext, ext.upper()))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', required=True, help='GoPro root holding train/ and test/')
    parser.add_argument('--workers', type=int, default=4, help='parallel processes')
    parser.add_argument('--patch-size', type=int, default=512, help='training patch side')
    parser.add_argument('--stride', type=int, default=256, help='training patch stride')
    parser.add_argument('--val-size', type=int, default=256, help='validation crop side')
    return parser.parse_args(argv)


def list_pairs(split_root: str) -> List[Tuple[str, str]]:
    """``(input, target)`` paths under ``split_root/{input,target}``, paired by file name and
    sorted, as ``PairedDeblurDataset`` pairs them (without importing it: MMagic is not needed).

    Raises:
        FileNotFoundError: a folder is missing, or an image has no partner (names it).
        ValueError: a folder holds no images.
    """
    folders = [osp.join(split_root, 'input'), osp.join(split_root, 'target')]
    names = []
    for folder in folders:
        if not osp.isdir(folder):
            raise FileNotFoundError(f"Image folder '{folder}' does not exist.")
        names.append({
            name for name in os.listdir(folder) if name.endswith(IMAGE_SUFFIXES)
            and osp.isfile(osp.join(folder, name))})
        if not names[-1]:
            raise ValueError(f"Image folder '{folder}' holds no images with a suffix in "
                             f'{IMAGE_SUFFIXES}.')
    for folder, own, other in ((folders[0], *names), (folders[1], *names[::-1])):
        if own - other:
            raise FileNotFoundError(f"Missing partner of '{osp.join(folder, min(own - other))}' "
                                    f'({len(own - other)} image(s) of {folder} have no partner '
                                    'of the same name).')
    return [(osp.join(folders[0], name), osp.join(folders[1], name)) for name in sorted(names[0])]


def convert(pairs: Sequence[Tuple[str, str]], out_root: str, plan: CropPlan, workers: int,
            desc: str) -> Tuple[int, int]:
    """Crop every pair into ``out_root/{input_crops,target_crops}``.

    Returns:
        ``(written, skipped)`` numbers of crop pairs.
    """
    out_dirs = [osp.join(out_root, 'input_crops'), osp.join(out_root, 'target_crops')]
    for folder in out_dirs:
        os.makedirs(folder, exist_ok=True)
    job = partial(crop_pair, out_dirs=out_dirs, plan=plan)
    with Pool(workers) if workers > 1 else nullcontext() as pool:
        mapper = pool.imap_unordered if pool else map
        results = list(tqdm(mapper(job, pairs), total=len(pairs), desc=desc, unit='frame'))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def main(argv: Optional[List[str]] = None) -> None:
    """Write the training patches and the validation crops."""
    args = parse_args(argv)
    if not osp.isdir(args.root):
        raise FileNotFoundError(f"GoPro root '{args.root}' does not exist; expected a folder "
                                'holding train/{input,target} and test/{input,target}.')
    test_root = osp.join(args.root, 'test')
    if osp.isdir(osp.join(test_root, 'GoPro', 'input')):
        test_root = osp.join(test_root, 'GoPro')
    jobs = [
        ('train', osp.join(args.root, 'train'),
         partial(train_crops, patch_size=args.patch_size, stride=args.stride)),
        ('val', test_root, partial(val_crops, size=args.val_size)),
    ]
    with user_input():  # the frames of the user's GoPro root: an unreadable one is named
        pairs = {split: list_pairs(src) for split, src, _ in jobs}  # check both before writing
    for split, src, plan in jobs:
        with user_input():
            written, skipped = convert(pairs[split], osp.join(args.root, 'crop', split), plan,
                                       args.workers, desc=split)
        print(f'{split}: {len(pairs[split])} frames from {src}, {written} crop pairs written, '
              f'{skipped} already there')


if __name__ == '__main__':
    run(main)
