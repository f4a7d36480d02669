"""GPU check, part (e): the official HI-Diff networks on the same device, for the ratios.

Usage (``benchmarks/gpu_check.sh`` runs it on a GPU machine)::

    python benchmarks/gpu_official.py --official PATH [--out DIR] [--budget S] [--sizes ...] \
        [--batch 8] [--patch 128]

``--official`` is a checkout of github.com/zhengchen1999/HI-Diff, read at run time and never
copied (``.official/`` is git-ignored for it). The official fp32 whole prediction at ``--sizes``
and its stage-1 / stage-2 training steps (``optimize_parameters``) on the batch of
``gpu_train_step.py``, with the weights of the same GoPro model (random, seed 0).
``gpu_report.py`` then divides every prediction of ``gpu_inference.py`` and every step of
``gpu_train_step.py`` by the official time and peak memory. Writes ``OUT/gpu_e.json``.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List

from _common import (Clock, build_model, build_official_predict, build_official_step, gpu_args,
                     gpu_parser, guarded, parse_size, peak_gib, reset_peak, run_part, timed)


def official_cases(model, device, args, clock: Clock, results: List[Dict], until: float) -> None:
    """Part (e): the official networks side by side, fp32, with the model's weights.

    The whole prediction at ``--sizes`` (``HI_Diff_S2.test``: LE_DM, the 8-step chain from
    seeded noise, net_g) and one training step per stage on ``--batch`` x ``--patch`` pairs
    (``optimize_parameters`` of HI_Diff_S1 / S2), from ``--official`` (a checkout of
    github.com/zhengchen1999/HI-Diff, read at run time). The ratio table of the report divides
    each case of (a) / (b) by the official time.
    """
    import torch

    weights = osp.join(args.out, 'official_side_by_side_weights.pth')
    torch.save(model.state_dict(), weights)
    step_args = argparse.Namespace(official=args.official, weights=weights, batch=args.batch,
                                   patch=args.patch)
    cases = [('hidiff', size, None) for size in args.sizes] + [
        ('train', f'{args.batch}x{args.patch}x{args.patch}', stage) for stage in (1, 2)]
    for which, size, stage in cases:
        row = dict(part='e', model=which, size=size, stage=stage, dtype='fp32', path='official')
        if clock.left(until) <= 0:
            row['status'] = 'skipped (time budget)'
            results.append(row)
            continue

        def case(which=which, size=size, stage=stage):
            if which == 'train':
                step, _, _ = build_official_step(step_args, stage, device.type)

                def run():
                    torch.manual_seed(100)
                    return step()

                reset_peak(device)
                median, _ = timed(run, device, args.train_steps)
                return dict(median_ms=median * 1e3, peak_gib=peak_gib(device))
            predict, _ = build_official_predict(args.official, weights, device.type)
            h, w = parse_size(size)
            img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
            reset_peak(device)
            with torch.no_grad():
                median, _ = timed(lambda: predict(img), device, args.repeats)
            return dict(median_ms=median * 1e3, peak_gib=peak_gib(device))

        guarded(results, row, case)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    os.remove(weights)


def main(argv=None) -> List[Dict]:
    parser = gpu_parser(__doc__.split('\n\n')[0])
    args = gpu_args(parser, argv)
    if not args.official or args.tiny:
        parser.error('part (e) needs --official PATH and the full-size model (no --tiny)')
    return run_part('e', args, lambda device, clock, rows: official_cases(
        build_model(False, device), device, args, clock, rows, args.budget))


if __name__ == '__main__':
    main()
