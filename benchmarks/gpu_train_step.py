"""GPU check, part (b): a training step of HI-Diff per stage, dtype and form.

Usage (``benchmarks/gpu_check.sh`` runs it on a GPU machine)::

    python benchmarks/gpu_train_step.py [--out DIR] [--budget S] [--batch 8] [--patch 128] \
        [--train-steps 5] [--with-cp]
    python benchmarks/gpu_train_step.py --cpu --tiny     # CPU smoke run

``model.train_step(data, optim_wrapper)`` for stage 1 and 2 on ``--batch`` random pairs of
``--patch`` px, with the optimizer wrapper of ``configs/hidiff_gopro.py`` (fp32),
``configs/hidiff/hidiff_gopro_amp.py`` (bf16 AmpOptimWrapper) and
``configs/hidiff/hidiff_gopro_amp_fp16.py`` (fp16, dynamic loss scaling), fast vs exact form
(converted explicitly); the same initial weights and noise for every case; median of
``--train-steps`` steps after two warm-up steps; the first step's loss against fp32 exact.
``--with-cp`` turns on the Transformer's activation checkpointing (``generator.with_cp``);
``--batch 1 --patch 384`` is one micro-batch of the recipe's 384^2 phase. On CPU, bf16 runs under
CPU autocast (AmpOptimWrapper's CUDA check is lifted for that) and fp16 is skipped. Each case is
guarded. Writes ``OUT/gpu_b.json``; ``gpu_report.py`` makes the tables.
"""
import copy
from typing import Dict, List

from _common import (BF16_CONFIG, FP16_CONFIG, FP32_CONFIG, Clock, amp_on_cpu, build_model,
                     gpu_args, gpu_parser, guarded, peak_gib, reset_peak, run_part, set_form, timed)


def optim_cfg(path: str) -> Dict:
    from mmengine.config import Config
    return Config.fromfile(path).optim_wrapper.to_dict()


def train_cases(model, device, args, clock: Clock, results: List[Dict], until: float) -> None:
    import torch
    from mmagic.structures import DataSample
    from mmengine.optim import build_optim_wrapper

    wrappers = dict(fp32=optim_cfg(FP32_CONFIG), bf16=optim_cfg(BF16_CONFIG),
                    fp16=optim_cfg(FP16_CONFIG))
    init = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(2)
    size = (3, args.patch, args.patch)
    inputs = [torch.randint(0, 256, size, generator=g).float().to(device)
              for _ in range(args.batch)]
    gts = [torch.randint(0, 256, size, generator=g).float().to(device)
           for _ in range(args.batch)]

    def batch():
        return dict(inputs=list(inputs), data_samples=[DataSample(gt_img=t) for t in gts])

    refs = {}
    for stage in (1, 2):
        for dtype in ('fp32', 'bf16', 'fp16'):
            for fast in (False, True):
                row = dict(part='b', stage=stage, dtype=dtype, path='fast' if fast else 'exact',
                           batch=f'{args.batch}x{args.patch}x{args.patch}'
                           + (', with_cp' if args.with_cp else ''))
                if clock.left(until) <= 0:
                    row['status'] = 'skipped (time budget)'
                    results.append(row)
                    continue
                if dtype == 'fp16' and device.type != 'cuda':
                    row['status'] = 'skipped (fp16 autocast needs CUDA)'
                    results.append(row)
                    continue

                def case(stage=stage, dtype=dtype, fast=fast):
                    model.load_state_dict(init)
                    model.set_stage(stage)
                    model.generator.with_cp = args.with_cp
                    model.train()
                    set_form(model, fast)
                    with amp_on_cpu(device):
                        wrapper = build_optim_wrapper(model, copy.deepcopy(wrappers[dtype]))
                    losses = []

                    def step():
                        torch.manual_seed(100 + len(losses))
                        log_vars = model.train_step(batch(), wrapper)
                        losses.append(float(log_vars['loss'].detach()))
                        return log_vars

                    try:
                        step()
                        reset_peak(device)
                        median, _ = timed(step, device, args.train_steps, warmup=1)
                    finally:
                        model.eval()
                    first = losses[0]
                    key = stage
                    if dtype == 'fp32' and not fast:
                        refs[key] = first
                    ref = refs.get(key)
                    out = dict(median_ms=median * 1e3, peak_gib=peak_gib(device),
                               first_loss=first, last_loss=losses[-1],
                               loss_diff=abs(first - ref) if ref is not None else None)
                    if dtype != 'fp32':
                        scaler = wrapper.loss_scaler
                        out['loss_scale'] = scaler.get_scale() if scaler.is_enabled() else 'off'
                    if not all(map(lambda v: v == v and abs(v) != float('inf'), losses)):
                        out['status'] = 'non-finite loss'
                    return out

                guarded(results, row, case)
    model.load_state_dict(init)
    model.set_stage(1)


def main(argv=None) -> List[Dict]:
    args = gpu_args(gpu_parser(__doc__.split('\n\n')[0]), argv)
    return run_part('b', args, lambda device, clock, rows: train_cases(
        build_model(args.tiny, device), device, args, clock, rows, args.budget))


if __name__ == '__main__':
    main()
