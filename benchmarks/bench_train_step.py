"""CPU training-step time of the HI-Diff GoPro model, stage 1 and stage 2.

Usage::

    python benchmarks/bench_train_step.py [--patch 128] [--batch 16] [--iters 3] [--threads 2]

Builds ``configs/hidiff/hidiff_s1_gopro.py``'s model (fp32, random weights) and times full
training steps (forward, loss, backward, grad-norm clip 0.01, AdamW update) on random
``batch x 3 x patch x patch`` pairs: one warm-up step, then the median of ``--iters`` steps, for
stage 1 (Transformer + stage-1 encoder) and stage 2 (frozen stage-1 encoder, T-step chain with
gradients, Transformer + stage-2 encoder + denoiser). The default is the official first
progressive phase (128 x 128, 16 pairs per GPU).
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=osp.join(REPO, 'configs/hidiff/hidiff_s1_gopro.py'))
    parser.add_argument('--patch', type=int, default=128)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()

    import hidiff_mm  # noqa: F401  # isort: skip  (applies the compat layer before mmagic)
    from mmagic.registry import MODELS
    from mmagic.structures import DataSample
    from mmagic.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    register_all_modules()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    shape = (args.batch, 3, args.patch, args.patch)
    data = dict(inputs=list(torch.randint(0, 256, shape, dtype=torch.uint8)),
                data_samples=[DataSample(gt_img=x) for x in
                              torch.randint(0, 256, shape, dtype=torch.uint8)])
    print(f'HI-Diff GoPro model, batch {args.batch} x {args.patch}x{args.patch}, '
          f'{args.threads} threads, torch {torch.__version__}')
    print('| stage | s / iteration (median) | steps timed |')
    print('|---|---|---|')
    for stage in (1, 2):
        model.set_stage(stage)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        times = []
        for i in range(args.iters + 1):
            start = time.perf_counter()
            model.train_step(data, optim)
            if i:
                times.append(time.perf_counter() - start)
        print(f'| {stage} | {statistics.median(times):.2f} | {len(times)} |', flush=True)


if __name__ == '__main__':
    main()
