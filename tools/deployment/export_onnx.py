# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Export a HI-Diff config + checkpoint to ONNX: one graph of the blind prediction, or two.

Usage::

    python tools/deployment/export_onnx.py [--config CONFIG --checkpoint CKPT] --out model.onnx \
        [--steps N] [--split] [--check]

Without ``--config`` / ``--checkpoint`` the shipped demo model is exported. The graph takes
``image`` (B, 3, H, W) float32 in the model's range (RGB; mean/std are in its metadata) and
``z_T`` (B, N, C') ~ N(0, I), and returns the prediction (B, 3, H, W): the stage-2 encoder, the
T-step sampler unrolled and the Transformer, padding to the multiple of 8 inside; any H, W.
``--split`` writes the same prediction as two graphs instead, ``<stem>.prior.onnx`` (padding,
encoder, sampler) and ``<stem>.transformer.onnx`` (a padded image or tile and the prior), so
that ``onnx_deblur.py --tile`` can run the Transformer tile by tile
(``hidiff_mm/deployment/onnx_export.py``). ``--check`` runs the written graph(s) with
onnxruntime on a random 37x45 image and prints the largest difference from the PyTorch
prediction with the same ``z_T`` (split: also tiled, tile 16, overlap 8).
Run it with ``tools/deployment/onnx_deblur.py``. See docs/deployment.md.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import torch

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(TOOLS))  # the repository, where hidiff_mm is
sys.path.insert(0, TOOLS)  # for quiet
from quiet import quiet_imports  # noqa: E402  (tools/quiet.py)

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis import init_model  # noqa: E402
from hidiff_mm.apis.demo_model import DEMO_CONFIG, DEMO_WEIGHTS  # noqa: E402
from hidiff_mm.deployment.graph import pad_to_multiple_graph  # noqa: E402
from hidiff_mm.deployment.onnx_export import export_onnx, split_paths  # noqa: E402
from hidiff_mm.deployment.onnx_runner import OnnxDeblurrer, import_extra  # noqa: E402
from hidiff_mm.models.editors.tiling import tiled_apply  # noqa: E402
from hidiff_mm.utils.cli import run, user_input  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=None, help='model config (default: the demo model)')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint (default: the demo model; with --config, none keeps '
                        'random weights)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--steps', type=int, default=None,
                        help='sampler steps unrolled into the graph (1..T; default: all T)')
    parser.add_argument('--split', action='store_true',
                        help='write <stem>.prior.onnx and <stem>.transformer.onnx (the prior and '
                        'the Transformer), for tiling with onnx_deblur.py --tile')
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with PyTorch on a random image afterwards')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    with user_input():  # a missing extra: one line with the install command
        import_extra('onnx')
        if args.check:
            import_extra('onnxruntime')
    config = args.config or DEMO_CONFIG
    checkpoint = args.checkpoint if args.config else (args.checkpoint or DEMO_WEIGHTS)
    model = init_model(config, checkpoint, 'cpu')
    # a bad --steps is an InputError of the graph's own check of the prediction options
    graph = export_onnx(model, args.out, steps=args.steps, split=args.split)
    files = split_paths(args.out) if args.split else (args.out,)
    size_mb = sum(osp.getsize(path) for path in files) / 2**20
    print(f'wrote {" + ".join(files)} ({size_mb:.1f} MiB, {len(graph.timesteps)} sampler steps, '
          f'z_T shape (B, {graph.prior_shape[0]}, {graph.prior_shape[1]}))')
    if args.check:
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, 37, 45, generator=gen)
        z_T = torch.randn(1, *graph.prior_shape, generator=gen)
        runner = OnnxDeblurrer(files[0])
        with torch.no_grad():
            expected = graph(image, z_T).numpy()
        got = runner.predict(image.numpy(), z_T.numpy())
        print(f'check: max |onnxruntime - PyTorch| = {abs(got - expected).max():.3g} '
              '(37x45 random image)')
        if args.split:
            with torch.no_grad():
                padded = pad_to_multiple_graph(image, graph.pad_multiple)
                prior = graph.prior(padded, z_T)
                expected = tiled_apply(lambda tile: graph.generator(tile, prior), padded, 16, 8,
                                       graph.pad_multiple)[..., :37, :45].numpy()
            got = runner.predict(image.numpy(), z_T.numpy(), tile=16, overlap=8)
            print(f'check: max |onnxruntime - PyTorch| = {abs(got - expected).max():.3g} '
                  '(the same, tile 16, overlap 8)')
    return 0


if __name__ == '__main__':
    run(main)
