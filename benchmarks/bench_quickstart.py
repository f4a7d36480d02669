# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The quick start's promise, measured: the demo model's gain over seeds and the wall time.

Usage::

    python benchmarks/bench_quickstart.py [--seeds 0 1 2 3 4] [--num-test 50] [--full]
        [--threads 1] [--self-ensemble] [--precision fp32 [bf16]] [--json results.json]

* **Gain**: the shipped demo model (``demo_model/``) on ``--num-test`` images of each procedural
  camera-shake test set (shapes; dead leaves) for each seed, and on the blurred photographs for
  each seed: PSNR/SSIM
  of the blurry input and of the output, the gain, and the wall time of each evaluation; the
  photographs grouped by how blurred they are.
* **Sharp in, sharp out**: the PSNR of the output to the input for sharp photographs.
  ``--self-ensemble`` measures the output averaged over the 8 dihedral transforms (8x the time).
  ``--precision fp32 bf16`` evaluates every set in both precisions in turn (the same images and
  seeds) and adds a table of the bf16 - fp32 PSNR differences and time ratios.
* **Wall time** (``--full``): ``tools/quickstart.py`` end to end in a fresh subprocess, into a
  temporary folder (its data, fine-tuning run and figures start from nothing), timed from the
  outside; its own ``summary.json`` gives the split between evaluation and fine-tuning.

Prints one table per part, the CPU and the torch thread count.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import torch
from _common import cpu_name

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis.demo_model import (TEST_SET, evaluate_pairs, init_demo_model,  # noqa: E402
                                       photo_gain_by_blur, procedural_test_pairs, sharp_photo_pairs,
                                       summarize, summarize_sharp)
from hidiff_mm.datasets.photos import make_photo_pairs  # noqa: E402

HEADER = ('| set | seed | images | blurry PSNR | HI-Diff PSNR | gain | blurry SSIM | '
          'HI-Diff SSIM | time |')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--num-test', type=int, default=TEST_SET['num'])
    parser.add_argument('--full', action='store_true',
                        help='also time tools/quickstart.py end to end in a subprocess')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1, as the quick start evaluates)')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='average the outputs of the 8 dihedral transforms of each input')
    parser.add_argument('--precision', nargs='+', choices=['fp32', 'bf16'], default=['fp32'],
                        help='prediction precision(s), each evaluated in turn (default fp32)')
    parser.add_argument('--json', help='write the results here too')
    return parser.parse_args(argv)


def row(name: str, seed: int, summary: Dict, seconds: float) -> str:
    return (f'| {name} | {seed} | {summary["num_images"]} | {summary["psnr_blurry"]:.2f} | '
            f'{summary["psnr_output"]:.2f} | {summary["psnr_gain"]:+.2f} | '
            f'{summary["ssim_blurry"]:.4f} | {summary["ssim_output"]:.4f} | {seconds:.1f} s |')


def bench_gain(seeds: List[int], num: int, self_ensemble: bool = False,
               precisions: Sequence[str] = ('fp32', )) -> Dict:
    """``{set: {seed: summary + seconds}}`` of the first precision (and its photo groups and sharp
    photographs); with more precisions also ``by_precision``: ``{precision: {set: {seed: ...}}}``,
    each evaluated right after the first on the same images."""
    model = init_demo_model()
    by_precision: Dict = {p: {'procedural': {}, 'dead_leaves': {}, 'photos': {}}
                          for p in precisions}
    print(HEADER.replace('| set |', '| precision | set |'))
    print('|---' * HEADER.count('|') + '|')
    sets = (('procedural', lambda s: procedural_test_pairs(s, num)),
            ('dead_leaves', lambda s: procedural_test_pairs(s, num, scene='dead_leaves')),
            ('photos', lambda s: make_photo_pairs(seed=s)))
    photo_rows = []
    for name, make in sets:
        for seed in seeds:
            pairs = make(seed)
            for precision in precisions:
                start = time.perf_counter()
                rows = evaluate_pairs(model, pairs, self_ensemble, precision)
                summary = summarize(rows)
                seconds = time.perf_counter() - start
                by_precision[precision][name][seed] = dict(summary, seconds=seconds)
                print(f'| {precision} ' + row(name, seed, summary, seconds), flush=True)
                if name == 'photos' and precision == precisions[0]:
                    photo_rows += rows
    for precision in precisions:
        for name, by_seed in by_precision[precision].items():
            gains = [r['psnr_gain'] for r in by_seed.values()]
            print(f'{precision}, {name}: gain {min(gains):+.2f} .. {max(gains):+.2f} dB over '
                  f'seeds {seeds}, mean {sum(gains) / len(gains):+.2f} dB')
    results: Dict = dict(by_precision[precisions[0]])
    if len(precisions) > 1:
        results['by_precision'] = by_precision
    if 'fp32' in precisions and 'bf16' in precisions:
        print_precision_table(by_precision)
    results['photos_by_blur'] = photo_gain_by_blur(photo_rows)
    for group in results['photos_by_blur']:
        gain = 'n/a' if group['mean_gain'] is None else f'{group["mean_gain"]:+.2f} dB'
        print(f'photographs with blurry PSNR in [{group["low"]}, {group["high"]}): '
              f'{group["images"]} images, {group["improved"]} improved, mean gain {gain}')
    results['sharp_photos'] = summarize_sharp(
        evaluate_pairs(model, sharp_photo_pairs(), self_ensemble, precisions[0]))
    print('sharp photographs, output to input: ' + ', '.join(
        f'{name} {value:.2f}' for name, value in results['sharp_photos']['psnr'].items())
        + f' dB; mean {results["sharp_photos"]["psnr_mean"]:.2f}, worst '
        f'{results["sharp_photos"]["psnr_min"]:.2f} dB')
    return results


def print_precision_table(results: Dict) -> None:
    """bf16 against fp32 per set and seed: output PSNR and SSIM differences, time ratio."""
    print('\n| set | seed | fp32 PSNR | bf16 PSNR | bf16 - fp32 PSNR | bf16 - fp32 SSIM | '
          'time bf16 / fp32 |\n|---|---|---|---|---|---|---|')
    worst = 0.0
    for name, by_seed in results['fp32'].items():
        for seed, ref in by_seed.items():
            low = results['bf16'][name][seed]
            diff = low['psnr_output'] - ref['psnr_output']
            worst = max(worst, abs(diff))
            print(f'| {name} | {seed} | {ref["psnr_output"]:.3f} | {low["psnr_output"]:.3f} | '
                  f'{diff:+.4f} dB | {low["ssim_output"] - ref["ssim_output"]:+.5f} | '
                  f'{low["seconds"] / ref["seconds"]:.2f} |')
    print(f'largest |bf16 - fp32| output PSNR difference: {worst:.4f} dB')


def bench_full() -> Dict:
    with tempfile.TemporaryDirectory(prefix='bench_quickstart_') as tmp:
        cmd = [sys.executable, osp.join(REPO, 'tools', 'quickstart.py'), '--out',
               osp.join(tmp, 'out'), '--data', osp.join(tmp, 'data'), '--work-dir',
               osp.join(tmp, 'finetune')]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        with open(osp.join(tmp, 'out', 'summary.json')) as f:
            summary = json.load(f)
    result = dict(wall_s=wall, evaluate_s=summary['time_evaluate_s'],
                  finetune_s=summary['time_total_s'] - summary['time_evaluate_s'],
                  gains=[s['psnr_gain'] for s in summary['seeds'].values()],
                  photo_gain=summary['photos']['psnr_gain'])
    print(f'tools/quickstart.py end to end: {wall:.0f} s wall (evaluation and figures '
          f'{result["evaluate_s"]:.0f} s with the fine-tuning running beside them, then '
          f'{result["finetune_s"]:.0f} s waiting for the fine-tuning; the rest is start-up); '
          f'gains {", ".join(f"{g:+.2f}" for g in result["gains"])} dB, photographs '
          f'{result["photo_gain"]:+.2f} dB')
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} torch threads')
    results = dict(cpu=cpu_name(), threads=torch.get_num_threads(),
                   self_ensemble=args.self_ensemble,
                   precisions=args.precision,
                   gain=bench_gain(args.seeds, args.num_test, args.self_ensemble, args.precision))
    if args.full:
        results['full'] = bench_full()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
