# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Deblur images with an exported HI-Diff ONNX graph: onnxruntime, numpy and OpenCV only.

Usage::

    python tools/deployment/onnx_deblur.py model.onnx IMAGE_OR_FOLDER --out DIR [--seed 100] \
        [--threads N] [--tile 256 [--overlap 32]]

Neither PyTorch nor MMagic is imported. Each result is written as ``DIR/<input stem>.png``.
``z_T`` is drawn with ``numpy.random.default_rng(seed)`` (the same seed gives the same output;
the numbers differ from PyTorch's ``deblur(seed=...)``, whose generator is torch's). Images are
read as OpenCV's ``IMREAD_COLOR`` does (alpha dropped, grayscale to colour, 16-bit to 8-bit).
Without ``--tile`` each image is one run of the graph(s), untiled: its memory grows with the
image. ``--tile`` needs a split export (``export_onnx.py --split``; pass its ``.prior.onnx``):
the prior is sampled from the whole image, then the Transformer runs on ``tile x tile`` windows
blended over ``--overlap`` pixels, as ``deblur(..., tile=..., overlap=...)`` in PyTorch. See
docs/deployment.md for the memory each needs.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional

import cv2
import numpy as np

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(TOOLS))  # the repository, where hidiff_mm is
sys.path.insert(0, TOOLS)  # for light_import
from light_import import import_alone  # noqa: E402

runner = import_alone('deployment.onnx_runner')
cli = import_alone('utils.cli')
errors = import_alone('utils.errors')
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='the .onnx graph from tools/deployment/export_onnx.py '
                        '(of a split export: its .prior.onnx)')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=100, help='seed of z_T (default 100)')
    parser.add_argument('--threads', type=int, default=None,
                        help="onnxruntime intra-op threads (default: onnxruntime's)")
    parser.add_argument('--tile', type=int, default=None,
                        help='run the Transformer on tiles of this side (a multiple of 8; needs '
                        'a split export; default: the whole image)')
    parser.add_argument('--overlap', type=int, default=runner.DEFAULT_OVERLAP,
                        help=f'tile overlap in pixels (default {runner.DEFAULT_OVERLAP})')
    return parser.parse_args(argv)


def read_bgr(path: str) -> np.ndarray:
    """BGR uint8 (H, W, 3) of an image file; ``ValueError`` naming it if it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f'cannot read image {path}: OpenCV cannot decode it')
    return img


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.model):
        raise FileNotFoundError(f'ONNX graph not found: {args.model}')
    if osp.isdir(args.input):
        files = sorted(osp.join(args.input, f) for f in os.listdir(args.input)
                       if f.lower().endswith(EXTENSIONS))
    elif osp.isfile(args.input):
        files = [args.input]
    else:
        raise FileNotFoundError(f'no such image or folder: {args.input}')
    with cli.user_input():  # a bad graph, or onnxruntime missing: one line
        model = runner.OnnxDeblurrer(args.model, threads=args.threads)
    problem = model.tiling_problem(args.tile, args.overlap)
    if problem:
        raise errors.InputError(problem)
    os.makedirs(args.out, exist_ok=True)
    for path in files:
        start = time.perf_counter()
        with cli.user_input():
            image = read_bgr(path)
        out = model.deblur(image, seed=args.seed, tile=args.tile, overlap=args.overlap)
        dst = osp.join(args.out, osp.splitext(osp.basename(path))[0] + '.png')
        if not cv2.imwrite(dst, out):
            raise OSError(f'cannot write {dst}')
        print(f'{path} -> {dst} ({time.perf_counter() - start:.2f} s)')
    return 0


if __name__ == '__main__':
    cli.run(main)
