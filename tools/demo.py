# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Deblur an image or every image of a folder with a HI-Diff checkpoint.

Usage::

    python tools/demo.py IMAGE_OR_FOLDER --config CONFIG --checkpoint CKPT --out DIR \
        [--seed S] [--tile 512 --overlap 32] [--steps N] [--self-ensemble] \
        [--precision bf16] [--device cpu]

Each result is written as ``DIR/<input stem>.png`` (8-bit, lossless). Grayscale, RGBA and
16-bit inputs are converted to 8-bit colour. The prediction is stochastic through the prior's
starting noise ``z_T``: ``--seed`` makes it reproducible (default 100, the official test seed;
``--seed -1`` draws from an unseeded RNG). In a folder, every image uses the same seed.
A file that cannot be read is reported by name; the other images are still processed and the
exit status is 1. See docs/inference.md.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import cv2
from tqdm import tqdm

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis import deblur, init_model, list_images, read_image  # noqa: E402
from hidiff_mm.utils.cli import run  # noqa: E402
from hidiff_mm.utils.errors import InputError  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True, help='checkpoint (MMEngine format; '
                        'convert official files with tools/convert_official_checkpoint.py)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=100,
                        help='seed of the prior noise z_T (default 100; -1: unseeded)')
    parser.add_argument('--tile', type=int, default=None,
                        help="tile side (multiple of 8) for large images; default: the config's "
                        'model.test_cfg (whole image)')
    parser.add_argument('--overlap', type=int, default=None,
                        help='tile overlap in pixels (default: model.test_cfg, 32)')
    parser.add_argument('--steps', type=int, default=None,
                        help='sampler steps (1..T, evenly spaced); default: model.test_cfg (all T)')
    parser.add_argument('--self-ensemble', action='store_true', default=None,
                        help='average the 8 flips/rotations (8x slower)')
    parser.add_argument('--precision', choices=['fp32', 'bf16'], default=None,
                        help='bf16: the Transformer in bf16 (about half the time on CPUs with '
                        'AMX-BF16 / AVX512-BF16; elsewhere fp32 with a warning); default: '
                        'model.test_cfg (fp32)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda', 'cuda:1'")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if osp.isdir(args.input):
        files = list_images(args.input)
        if not files:
            raise FileNotFoundError(f'no image files in folder {args.input}')
    elif osp.isfile(args.input):
        files = [args.input]
    else:
        raise FileNotFoundError(f'input not found: {args.input}')
    outputs = [osp.join(args.out, osp.splitext(osp.basename(f))[0] + '.png') for f in files]
    clashes = sorted({o for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise InputError(f'several inputs would be written to the same file: {clashes[:5]}')
    model = init_model(args.config, args.checkpoint, args.device)
    # bad options fail here (InputError), before any image is processed
    model.prediction_options(tile=args.tile, tile_overlap=args.overlap, steps=args.steps,
                             self_ensemble=args.self_ensemble, precision=args.precision)
    seed = None if args.seed < 0 else args.seed
    failed = []
    progress = tqdm(list(zip(files, outputs)), unit='img', disable=len(files) == 1)
    for path, out in progress:
        progress.set_postfix_str(osp.basename(path))
        try:
            img = read_image(path)
        except (OSError, ValueError, TypeError) as err:
            if len(files) == 1:
                raise
            failed.append(str(err))
            tqdm.write(f'skipped: {err}', file=sys.stderr)
            continue
        result = deblur(model, img, seed=seed, tile=args.tile, overlap=args.overlap,
                        steps=args.steps, self_ensemble=args.self_ensemble,
                        precision=args.precision)
        os.makedirs(args.out, exist_ok=True)  # only once there is something to write
        if not cv2.imwrite(out, result):
            raise OSError(f'cannot write {out}')
    done = len(files) - len(failed)
    print(f'{done} of {len(files)} image(s) deblurred -> {args.out}')
    if failed:
        print(f'{len(failed)} file(s) could not be read:\n  ' + '\n  '.join(failed),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    run(main)
