"""CPU inference benchmark: the exported ONNX graph in onnxruntime vs. PyTorch's fast and exact
paths, side by side in one run.

Usage::

    python benchmarks/bench_onnx.py [--sizes 256x256 1280x720] [--repeats 3] \
        [--repeats-large 1] [--threads 2] [--json results.json]

The model is the GoPro HI-Diff (``configs/hidiff/hidiff_s2_gopro.py``'s architecture: the
defaults of ``HIDiffTransformer`` / ``LatentPriorHead``) with random weights
(``torch.manual_seed(0)``); each case is its whole blind prediction, batch 1:

* ``onnxruntime``: the graph of ``tools/deployment/export_onnx.py`` (padding, stage-2 encoder,
  8 sampler steps unrolled, exact Transformer) in an onnxruntime CPU session with
  ``--threads`` intra-op threads and onnxruntime's default (all) graph optimisations;
* ``fast``: ``HIDiff.forward_tensor`` in the fast form (the CPU default);
* ``exact``: ``HIDiff.forward_tensor`` in the exact form (the exported network).

All three see the same input (``torch.rand`` after ``torch.manual_seed(0)``) and the same
``z_T`` (seed 0). Each case runs in a fresh process (``_common.run_worker``): one warm-up and
the median of ``--repeats`` runs; sizes above 512x512 pixels run ``--repeats-large`` runs without
a warm-up. *memory* is the peak RSS of the timed runs minus the RSS once the model (or session)
is ready. The output difference is against the exact path. A case that fails (e.g. killed for
memory, exit -9) is reported as such and the others still run. Markdown to stdout, progress and
each case's numbers to stderr.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Dict, Tuple

import numpy as np
from _common import (cpu_name, current_rss, emit, gib, parse_size, peak_rss, reset_peak_rss,
                     run_worker, worker_setup)

SCRIPT = osp.abspath(__file__)
LARGE_PIXELS = 512 * 512
HIDIFF_CFG = dict(type='HIDiff', generator=dict(type='HIDiffTransformer'),
                  prior_head=dict(type='LatentPriorHead'),
                  data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.],
                                         std=[255., 255., 255.]))
CASES = ('onnxruntime', 'fast', 'exact')
NAMES = dict(onnxruntime='onnxruntime (exported graph)', fast='PyTorch, fast path',
             exact='PyTorch, exact path')


def build_model():
    import torch
    from mmagic.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(HIDIFF_CFG).eval()


def prepare(folder: str) -> Dict:
    """Build the model (seed 0), save its weights and export the graph (in a worker)."""
    import torch

    from hidiff_mm.deployment.onnx_export import export_onnx
    model = build_model()
    weights, graph = osp.join(folder, 'weights.pth'), osp.join(folder, 'hidiff.onnx')
    torch.save(model.state_dict(), weights)
    start = time.perf_counter()
    export_onnx(model, graph)
    return dict(weights=weights, graph=graph, export_s=time.perf_counter() - start)


def run_case(case: str, size: Tuple[int, int], repeats: int, warmup: bool, args) -> Dict:
    import torch
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    z_T = torch.randn(1, 16, 256, generator=torch.Generator().manual_seed(0))
    if case == 'onnxruntime':
        from hidiff_mm.deployment.onnx_runner import OnnxDeblurrer
        runner = OnnxDeblurrer(args.graph, threads=args.threads)
        image, noise = x.numpy(), z_T.numpy()

        def forward():
            return runner.predict(image, noise)
    else:
        from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
        model = build_model()
        model.load_state_dict(torch.load(args.weights, weights_only=True))
        (convert_to_fast if case == 'fast' else convert_to_exact)(model)
        generator = torch.Generator()

        def forward():
            with torch.no_grad():  # draws the same z_T as above (seed 0, same shape)
                return model.forward_tensor(x, generator=generator.manual_seed(0)).numpy()
    peak_reset = reset_peak_rss()
    rss_ready = current_rss()
    times, cpu_times = [], []
    for i in range(repeats + warmup):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = forward()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if i == 0:
            np.save(args.output, out)
        print(f'  [{case} {size[1]}x{size[0]}] run {i + 1}: {times[-1]:.2f} s', file=sys.stderr,
              flush=True)
    times, cpu_times = times[warmup:], cpu_times[warmup:]
    return dict(median_s=statistics.median(times), median_cpu_s=statistics.median(cpu_times),
                memory_bytes=peak_rss() - rss_ready, peak_reset=peak_reset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(256, 256), (720, 1280)])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--repeats-large', type=int, default=None)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--json', default=None)
    for name in ('--worker', '--folder', '--weights', '--graph', '--output'):  # workers only
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument('--size', type=parse_size, help=argparse.SUPPRESS)
    parser.add_argument('--warmup', type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_setup(args.threads)
        if args.worker == 'prepare':
            emit(prepare(args.folder))
        else:
            emit(run_case(args.worker, args.size, args.repeats, bool(args.warmup), args))
        return
    with tempfile.TemporaryDirectory() as folder:
        print('exporting the GoPro model ...', file=sys.stderr, flush=True)
        prep = run_worker(SCRIPT, ['--worker', 'prepare', '--folder', folder], args.threads)
        rows = []
        for h, w in args.sizes:
            large = h * w > LARGE_PIXELS and args.repeats_large is not None
            repeats = args.repeats_large if large else args.repeats
            results, outputs = {}, {}
            for case in CASES:
                out = osp.join(folder, f'{case}.npy')
                try:
                    results[case] = run_worker(SCRIPT, [
                        '--worker', case, '--size', f'{w}x{h}', '--repeats', str(repeats),
                        '--warmup', str(int(not large)), '--threads', str(args.threads),
                        '--weights', prep['weights'], '--graph', prep['graph'], '--output',
                        out], args.threads)
                except RuntimeError as err:  # e.g. killed for memory (exit -9): keep the rest
                    results[case] = dict(failed=str(err).split(' failed ')[-1])
                    print(f'  [{case} {w}x{h}] {results[case]["failed"]}', file=sys.stderr)
                    continue
                outputs[case] = np.load(out)
                print(f'  [{case} {w}x{h}] {json.dumps(results[case])}', file=sys.stderr,
                      flush=True)
            for case in outputs:
                if 'exact' in outputs:
                    results[case]['max_abs_diff_vs_exact'] = float(
                        np.abs(outputs[case] - outputs['exact']).max())
            rows.append((f'{w}x{h}', results))
    print(f'Machine: {cpu_name()}, {args.threads} threads; export {prep["export_s"]:.0f} s\n')
    print('| input | ' + ' | '.join(NAMES[c] for c in CASES) + ' | onnxruntime / fast | '
          'onnxruntime / exact | memory: ' + ' / '.join(CASES) + ' | max abs diff vs exact '
          '(onnxruntime, fast) |')
    print('|---' * 8 + '|')
    print('(times: wall (CPU); ratios: wall (CPU))')
    for label, r in rows:
        def time_of(c):
            if 'median_s' not in r[c]:
                return r[c]['failed']
            return f'{r[c]["median_s"]:.2f} s ({r[c]["median_cpu_s"]:.2f} s)'

        def ratio(a, b):
            if 'median_s' not in r[a] or 'median_s' not in r[b]:
                return 'n/a'
            return (f'{r[a]["median_s"] / r[b]["median_s"]:.2f} '
                    f'({r[a]["median_cpu_s"] / r[b]["median_cpu_s"]:.2f})')

        def mem(c):
            return gib(r[c]['memory_bytes']) if 'memory_bytes' in r[c] else 'n/a'

        def diff(c):
            value = r[c].get('max_abs_diff_vs_exact')
            return 'n/a' if value is None else f'{value:.1e}'
        print(f'| {label} | ' + ' | '.join(time_of(c) for c in CASES)
              + f' | {ratio("onnxruntime", "fast")} | {ratio("onnxruntime", "exact")} | '
              + ' / '.join(mem(c) for c in CASES)
              + f' | {diff("onnxruntime")}, {diff("fast")} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=cpu_name(), threads=args.threads, export_s=prep['export_s'],
                           results=dict(rows)), f, indent=2)


if __name__ == '__main__':
    main()
