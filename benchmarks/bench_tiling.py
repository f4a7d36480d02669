# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Peak memory of tiled vs. untiled HI-Diff inference on CPU, and the tiled-vs-untiled gap.

Usage::

    python benchmarks/bench_tiling.py [--size 3840x2160] [--tile 512] [--overlap 32] \
        [--untiled-sizes 256x256 512x512 1280x720 1920x1080 3840x2160] [--budget-gib 8] \
        [--max-tiles 0] [--diff-size 256x256] [--diff-tiles 128:0 128:32 128:64 192:64] \
        [--threads 1] [--json results.json]

Every case runs ``hidiff_mm.apis.deblur`` (the whole user path: BGR uint8 image in, padding,
prior, Transformer, blending, uint8 image out) with the HI-Diff **GoPro-size** model (random
weights, fp32, eval, no_grad) in a fresh subprocess, and reports its peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``) and the RSS right after the model is built (the import +
weights baseline, about 1.3 GiB, mostly MMagic's import chain).

* **Untiled**: the first two ``--untiled-sizes`` always run; a line through their peaks
  (activation memory is linear in the pixel count) predicts the others, which run only when
  the prediction fits ``--budget-gib`` (the machine is shared); the rest are reported as
  skipped with the prediction. A single size always runs.
* **Tiled** ``--size`` with ``--tile`` / ``--overlap``: the prior is sampled once from the whole
  image, then the Transformer runs tile by tile. ``--max-tiles K`` (> 0) runs the network on the
  first K tiles only and feeds zeros for the others (every tile has the same shape, so the
  later ones allocate exactly what the first ones did; blending, normalisation and the uint8
  conversion still run on the whole image). The RSS after each tile shows that it does not grow.
* **Prior only** at ``--size``: the stage-2 encoder + sampler on the whole image, the part of a
  tiled run that is not tiled.
* **Difference** at ``--diff-size``: tiled vs. untiled outputs (same seed, same prior), mean and
  max absolute difference in 8-bit levels, for each ``TILE:OVERLAP`` of ``--diff-tiles``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Tuple

from _common import current_rss, parse_size

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULT_TAG = 'BENCH_RESULT '
GIB = 1024**3
# The HI-Diff GoPro model (every default of HIDiffTransformer / LatentPriorHead).
HIDIFF_CFG = dict(type='HIDiff', stage=2, generator=dict(type='HIDiffTransformer'),
                  prior_head=dict(type='LatentPriorHead'),
                  data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.],
                                         std=[255., 255., 255.]))


def size_name(size: Tuple[int, int]) -> str:
    return f'{size[1]}x{size[0]}'


def peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


# ------------------------------------------------------------------------------------ worker
def _setup(threads: int):
    warnings.filterwarnings('ignore')
    sys.path.insert(0, REPO)
    import torch
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules

    import hidiff_mm  # noqa: F401  (compat layer, registration)
    from hidiff_mm.models.layers import convert_for_device
    register_all_modules()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return convert_for_device(MODELS.build(HIDIFF_CFG)).eval()  # the fast form on the CPU


def _image(size: Tuple[int, int], seed: int = 0):
    """A smooth random BGR uint8 image (upsampled noise), made in place-cheap uint8."""
    import cv2
    import numpy as np
    h, w = size
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class _CappedForward:
    """Stands in for the Transformer's ``forward``: runs it for the first ``max_calls`` tiles
    (all when 0) and returns zeros afterwards; records the RSS and time of every call."""

    def __init__(self, forward, max_calls: int):
        self.forward, self.max_calls, self.calls, self.rss = forward, max_calls, 0, []

    def __call__(self, img, prior):
        import torch
        self.calls += 1
        if self.max_calls and self.calls > self.max_calls:
            return torch.zeros_like(img)
        t0 = time.perf_counter()
        out = self.forward(img, prior)
        self.rss.append((current_rss(), time.perf_counter() - t0))
        return out


def run_case(case: Dict) -> Dict:
    import torch

    from hidiff_mm.apis import deblur, image_to_tensor, tile_grid
    model = _setup(case['threads'])
    size = tuple(case['size'])
    img = _image(size)
    base = current_rss()
    result = dict(case, baseline_rss=base)
    t0 = time.perf_counter()
    if case['kind'] == 'prior':
        with torch.no_grad():
            padded = model.pad(image_to_tensor(model, img))
            model.blind_prior(padded, torch.Generator().manual_seed(0))
    elif case['kind'] == 'untiled':
        deblur(model, img, seed=0)
    else:
        capped = _CappedForward(model.generator.forward, case['max_tiles'])
        model.generator.forward = capped  # nn.Module.__call__ calls the instance attribute
        h8, w8 = (-(-size[0] // 8) * 8), (-(-size[1] // 8) * 8)
        result['num_tiles'] = len(tile_grid(h8, w8, case['tile'], case['overlap']))
        deblur(model, img, seed=0, tile=case['tile'], overlap=case['overlap'])
        result['tiles_run'] = len(capped.rss)
        result['rss_after_tile'] = [r for r, _ in capped.rss]
        result['seconds_per_tile'] = sorted(s for _, s in capped.rss)[len(capped.rss) // 2]
    result.update(seconds=time.perf_counter() - t0, peak_rss=peak_rss())
    return result


def run_diff(case: Dict) -> Dict:
    import torch

    from hidiff_mm.apis import image_to_tensor
    model = _setup(case['threads'])
    x = image_to_tensor(model, _image(tuple(case['size']), seed=1))
    with torch.no_grad():
        full = model.forward_tensor(x, generator=torch.Generator().manual_seed(0))
    rows = []
    for tile, overlap in case['tiles']:
        with torch.no_grad():
            tiled = model.forward_tensor(x, generator=torch.Generator().manual_seed(0),
                                         tile=tile, tile_overlap=overlap)
        d = (tiled - full).abs() * 255
        rows.append(dict(tile=tile, overlap=overlap, mean=d.mean().item(), max=d.max().item(),
                         p99=d.flatten().kthvalue(int(0.99 * d.numel())).values.item()))
    residual = ((full - x).abs() * 255).mean().item()
    return dict(case, residual=residual, rows=rows)


# -------------------------------------------------------------------------------------- main
def spawn(case: Dict, timeout: float) -> Dict:
    """Run one case in a fresh interpreter; its result, or an error record."""
    env = dict(os.environ, OMP_NUM_THREADS=str(case['threads']),
               MKL_NUM_THREADS=str(case['threads']))
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, __file__, '--worker', json.dumps(case)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(case, error=f'timed out after {timeout:.0f} s')
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or '').strip().splitlines()[-3:]
    reason = 'killed (out of memory?)' if proc.returncode in (-9, 137) else ' | '.join(tail)
    return dict(case, error=f'exit {proc.returncode} after {time.time() - t0:.0f} s: {reason}')


def gib(value: Optional[float]) -> str:
    return '–' if value is None else f'{value / GIB:.2f}'


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--size', type=parse_size, default=(2160, 3840), help='tiled size, WxH')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--max-tiles', type=int, default=0,
                        help='run the network on the first K tiles only (0: all)')
    parser.add_argument('--untiled-sizes', type=parse_size, nargs='+',
                        default=[(256, 256), (512, 512), (720, 1280), (1080, 1920),
                                 (2160, 3840)])
    parser.add_argument('--budget-gib', type=float, default=8.0,
                        help='run an untiled size only if its predicted peak RSS fits')
    parser.add_argument('--diff-size', type=parse_size, default=(256, 256))
    parser.add_argument('--diff-tiles', nargs='*', default=['128:0', '128:32', '128:64',
                                                            '192:64'],
                        help='TILE:OVERLAP pairs for the difference measurement')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--timeout', type=float, default=3600, help='per case, seconds')
    parser.add_argument('--skip', nargs='*', default=[], choices=['untiled', 'tiled', 'prior',
                                                                  'diff'])
    parser.add_argument('--json', help='also write all results here')
    args = parser.parse_args(argv)
    if args.worker:
        case = json.loads(args.worker)
        result = run_diff(case) if case['kind'] == 'diff' else run_case(case)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    results = dict(machine=dict(python=platform.python_version(), cpu=platform.processor(),
                                cores=os.cpu_count(), threads=args.threads),
                   untiled=[], tiled=None, prior=None, diff=None)
    if 'untiled' not in args.skip:
        fit = None
        for i, size in enumerate(args.untiled_sizes):
            case = dict(kind='untiled', size=size, threads=args.threads)
            predicted = None if fit is None else fit[0] + fit[1] * size[0] * size[1]
            if predicted is not None and predicted > args.budget_gib * GIB:
                log(f'untiled {size_name(size)}: skipped, predicted peak {gib(predicted)} GiB')
                results['untiled'].append(dict(case, skipped=True, predicted_peak=predicted))
                continue
            log(f'untiled {size_name(size)} ...')
            res = spawn(case, args.timeout)
            res['predicted_peak'] = predicted
            results['untiled'].append(res)
            log(f'  -> {res.get("error") or gib(res["peak_rss"]) + " GiB"}')
            ok = [r for r in results['untiled'] if 'peak_rss' in r]
            if len(ok) >= 2 and i == 1:
                (h0, w0), (h1, w1) = ok[0]['size'], ok[1]['size']
                slope = (ok[1]['peak_rss'] - ok[0]['peak_rss']) / (h1 * w1 - h0 * w0)
                fit = (ok[0]['peak_rss'] - slope * h0 * w0, slope)
                results['untiled_fit'] = dict(intercept=fit[0], bytes_per_pixel=slope)
    if 'prior' not in args.skip:
        log(f'prior only {size_name(args.size)} ...')
        results['prior'] = spawn(dict(kind='prior', size=args.size, threads=args.threads),
                                 args.timeout)
    if 'tiled' not in args.skip:
        log(f'tiled {size_name(args.size)} tile {args.tile} overlap {args.overlap} ...')
        results['tiled'] = spawn(dict(kind='tiled', size=args.size, tile=args.tile,
                                      overlap=args.overlap, max_tiles=args.max_tiles,
                                      threads=args.threads), args.timeout)
    if 'diff' not in args.skip and args.diff_tiles:
        tiles = [tuple(int(v) for v in t.split(':')) for t in args.diff_tiles]
        log(f'difference at {size_name(args.diff_size)} ...')
        results['diff'] = spawn(dict(kind='diff', size=args.diff_size, tiles=tiles,
                                     threads=args.threads), args.timeout)
    print(report(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


def report(results: Dict) -> str:
    lines = ['| Case | Size | Peak RSS (GiB) | RSS after model build (GiB) | Wall time (s) '
             '| Notes |', '|---|---|---:|---:|---:|---|']
    for r in results['untiled']:
        note = ''
        if r.get('skipped'):
            note = f'not run: predicted peak {gib(r["predicted_peak"])} GiB > budget'
        elif r.get('error'):
            note = r['error']
        elif r.get('predicted_peak'):
            note = f'predicted {gib(r["predicted_peak"])} GiB'
        lines.append(f'| untiled | {size_name(r["size"])} | {gib(r.get("peak_rss"))} | '
                     f'{gib(r.get("baseline_rss"))} | {r.get("seconds", 0):.1f} | {note} |')
    for key in ('prior', 'tiled'):
        r = results.get(key)
        if not r:
            continue
        if key == 'tiled' and 'error' not in r:
            rss = ', '.join(gib(v) for v in r['rss_after_tile'])
            note = (f'tile {r["tile"]}, overlap {r["overlap"]}: {r["num_tiles"]} tiles, network '
                    f'run on {r["tiles_run"]} ({r["seconds_per_tile"]:.1f} s each); RSS after '
                    f'each: {rss} GiB')
        else:
            note = r.get('error', 'stage-2 encoder + sampler on the whole image')
        lines.append(f'| {key if key == "tiled" else "prior only"} | {size_name(r["size"])} | '
                     f'{gib(r.get("peak_rss"))} | {gib(r.get("baseline_rss"))} | '
                     f'{r.get("seconds", 0):.1f} | {note} |')
    fit = results.get('untiled_fit')
    if fit:
        lines.append(f'\nUntiled peak RSS ~ {gib(fit["intercept"])} GiB + '
                     f'{fit["bytes_per_pixel"] / 1024:.2f} KiB per pixel (line through the first '
                     'two untiled sizes).')
    d = results.get('diff')
    if d and 'error' not in d:
        lines += ['', f'Tiled vs. untiled at {size_name(d["size"])} (8-bit levels; the untiled '
                  f'output differs from its input by {d["residual"]:.1f} on average):', '',
                  '| Tile | Overlap | Mean abs diff | 99th percentile | Max abs diff |',
                  '|---:|---:|---:|---:|---:|']
        lines += [f'| {r["tile"]} | {r["overlap"]} | {r["mean"]:.3f} | {r["p99"]:.3f} | '
                  f'{r["max"]:.3f} |' for r in d['rows']]
    elif d:
        lines.append(f'\ndifference: {d["error"]}')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
