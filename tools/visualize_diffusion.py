# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Show how the diffusion prior guides the Transformer, step by step.

For one blurry image: the blurry input, then the Transformer's output guided by each
intermediate prior of the sampler, ``z_T`` (pure noise) ... ``z_0`` (the prior a prediction
uses), and optionally the sharp image; saved as one labelled grid::

    python tools/visualize_diffusion.py IMAGE --config CONFIG --checkpoint CKPT --out grid.png \
        [--gt SHARP] [--seed 100] [--steps N] [--tile T --overlap O] [--self-ensemble] \
        [--cols 5] [--device cpu]

The panels come out of the model's own prediction with these options (and the config's
``test_cfg`` for those not given), so the last prior's panel is exactly what ``tools/demo.py``
writes for the same seed and options.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import cv2

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis import diffusion_trajectory, init_model, labelled_grid, read_image  # noqa: E402
from hidiff_mm.apis.trajectory import DEFAULT_COLS  # noqa: E402
from hidiff_mm.utils.cli import run  # noqa: E402
from hidiff_mm.utils.errors import InputError  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='blurry input image')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True, help='checkpoint (MMEngine format)')
    parser.add_argument('--out', required=True, help='output image (e.g. grid.png)')
    parser.add_argument('--gt', help='sharp image, shown as the last panel')
    parser.add_argument('--seed', type=int, default=100, help='seed of z_T (default 100)')
    parser.add_argument('--steps', type=int, default=None,
                        help='sampler steps (1..T, evenly spaced); default: model.test_cfg (all T)')
    parser.add_argument('--tile', type=int, default=None,
                        help="tile side (multiple of 8); default: the config's model.test_cfg")
    parser.add_argument('--overlap', type=int, default=None,
                        help='tile overlap in pixels (default: model.test_cfg, 32)')
    parser.add_argument('--self-ensemble', action='store_true', default=None,
                        help='average the 8 flips/rotations (8x slower)')
    parser.add_argument('--cols', type=int, default=DEFAULT_COLS, help='panels per row')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda'")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    image = read_image(args.image)
    gt = read_image(args.gt) if args.gt else None
    if gt is not None and gt.shape != image.shape:
        raise InputError(f'--gt {args.gt} is {gt.shape[1]}x{gt.shape[0]}, the input '
                         f'{args.image} is {image.shape[1]}x{image.shape[0]}')
    model = init_model(args.config, args.checkpoint, args.device)
    model.prediction_options(tile=args.tile, tile_overlap=args.overlap, steps=args.steps,
                             self_ensemble=args.self_ensemble)  # bad options: InputError here
    items = diffusion_trajectory(model, image, seed=args.seed, tile=args.tile,
                                 overlap=args.overlap, steps=args.steps,
                                 self_ensemble=args.self_ensemble)
    if gt is not None:
        items.append(('sharp (GT)', gt))
    grid = labelled_grid(items, cols=args.cols)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    if not cv2.imwrite(args.out, grid):
        raise OSError(f'cannot write {args.out}')
    print(f'{len(items)} panels ({", ".join(label for label, _ in items)}) -> {args.out}')
    return 0


if __name__ == '__main__':
    run(main)
