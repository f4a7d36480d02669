# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Write a procedural blurred/sharp dataset in the GoPro layout.

``<out>/train/{input,target}/<i>.png`` and ``<out>/test/{input,target}/<i>.png``,
8-bit RGB PNGs. Image ``i`` of a split is drawn from
``numpy.random.default_rng([seed, split_id, i])``, so the same arguments give
byte-identical files. See :mod:`hidiff_mm.datasets.synthetic` for the model.

Example::

    python tools/make_synthetic_blur.py --out data/synthetic --num-train 200 --num-val 20
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import cv2
from tqdm import tqdm

sys.path.append(osp.dirname(osp.abspath(__file__)))  # tools/, for light_import
from light_import import import_alone  # noqa: E402

synthetic = import_alone('datasets.synthetic')
SCENES = {'shapes': synthetic.make_sharp_image,
          'dead_leaves': import_alone('datasets.dead_leaves').make_dead_leaves_image,
          'photo_crops': import_alone('datasets.photo_crops').make_photo_crop}
run = import_alone('utils.cli').run


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/synthetic', help='output root')
    parser.add_argument('--num-train', type=int, default=200, help='training pairs')
    parser.add_argument('--num-val', type=int, default=20, help='test/validation pairs')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--kernel-sizes', type=int, nargs=2, default=(5, 17),
                        metavar=('MIN', 'MAX'),
                        help='smallest and largest odd blur-kernel side; the default suits '
                        '128 px images (GoPro blur spans a similar fraction of a 720p frame)')
    parser.add_argument('--scene', choices=sorted(SCENES), default='shapes',
                        help='shapes: gradients, gratings or value noise under hard-edged shapes '
                        'and text; dead_leaves: occluding leaves with natural-image statistics; '
                        'photo_crops: crops of the sample photographs that scikit-image ships and '
                        'the held-out photo set does not use')
    parser.add_argument('--identity-prob', type=float, default=0.0,
                        help='fraction of identity pairs (input = sharp image, no blur, no noise)')
    args = parser.parse_args(argv)
    low, high = args.kernel_sizes
    if low < 3 or low % 2 == 0 or high % 2 == 0 or high < low:
        parser.error(f'--kernel-sizes takes two odd sides MIN <= MAX, each >= 3, got {low} {high}')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    """Generate both splits."""
    args = parse_args(argv)
    for split in ('train', 'test'):
        num = args.num_train if split == 'train' else args.num_val
        folders = [osp.join(args.out, split, sub) for sub in ('input', 'target')]
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        for i in tqdm(range(num), desc=split, unit='pair'):
            pair = synthetic.make_split_pair(args.seed, split, i, args.size,
                                             tuple(args.kernel_sizes), SCENES[args.scene],
                                             args.identity_prob)
            for folder, img in zip(folders, pair):
                cv2.imwrite(osp.join(folder, f'{i:06d}.png'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


if __name__ == '__main__':
    run(main)
