"""CPU inference benchmark: HI-Diff blind prediction, fast path vs. exact path vs. official code.

Usage::

    python benchmarks/bench_inference.py [--sizes 256x256 1280x720] [--repeats 3] \
        [--repeats-large N] [--threads 2] [--official PATH] [--models fast bf16 exact official] \
        [--strip-pixels N] [--json results.json]

Models (``--models``; default ``fast exact`` plus ``official`` when ``--official`` is given):

* ``fast``: this repository's HI-Diff GoPro model, whole blind prediction
  (``HIDiff.forward_tensor``: reflect pad to 8, stage-2 encoder, 8-step sampler, Transformer),
  converted to its fast form (``hidiff_mm.models.layers.convert_to_fast``, the CPU default;
  ``--strip-pixels`` sets its row-strip size).
* ``bf16``: the fast path predicting with ``precision='bf16'`` (the Transformer on bf16
  weights converted once, fp32 accumulation and statistics; ``hidiff_mm.models.layers.bf16``).
  The table says which CPU unit it used (AMX-BF16, AVX512-BF16) or why it ran fp32 instead.
* ``exact``: the same model converted to the exact reference form
  (``hidiff_mm.models.layers.convert_to_exact``), written like the official code.
* ``official`` (needs ``--official PATH``, a local checkout of github.com/zhengchen1999/HI-Diff
  read at run time, never copied): the official ``Transformer``, ``latent_encoder_gelu`` and
  ``denoising`` networks with the options of ``options/test/GoPro.yml``, run the way
  ``HI_Diff_S2.test()`` runs them.
* ``restormer`` (only when asked for): ``mmagic.models.Restormer`` with its motion-deblurring
  (GoPro) settings; a different network, so no output difference is reported for it.

Identical weights, inputs and noise: a first subprocess builds the HI-Diff model with
``torch.manual_seed(0)`` and saves its state dict to a temporary file; every HI-Diff worker loads
it (the official networks through the official key names). Each input is
``torch.rand(1, 3, H, W)`` drawn after ``torch.manual_seed(0)``, and every forward draws the
sampler's starting noise from a ``torch.Generator`` reseeded to 0. Each worker saves the output
of its first forward; the parent reports the max abs difference of each model's output against
the reference (``official`` when it ran, else ``exact``).

Timing and memory: each case (model x size) runs in a fresh subprocess with
``torch.set_num_threads(--threads)`` (and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``). It runs one
warm-up forward and ``--repeats`` timed forwards under ``torch.no_grad()`` and reports the median
wall time (``time.perf_counter``) and CPU time of all threads (``time.process_time``). Sizes with
more than 512 x 512 pixels use ``--repeats-large`` timed forwards and no warm-up when that
option is given (one 1280x720 forward of the official code takes about 3 minutes on 2 cores;
without a warm-up the first forward also pays one-off costs such as allocator growth, which are
small next to that). Peak RSS is the peak of the timed part: the peak is reset
(``/proc/self/clear_refs``) once the model is built and loaded, so the transient copy of the
loaded weights does not count; *memory* is that peak minus the RSS right after building.
Every worker imports ``hidiff_mm`` (and so MMagic) first, so absolute peaks share one import
baseline.

Ratios (fast / official and exact / official, or fast / exact without ``--official``; also
fast / Restormer when it ran) come from cases measured in the same run. ``WxH`` sizes are
width x height: ``1280x720`` is a (1, 3, 720, 1280) input. Markdown tables go to stdout,
progress to stderr.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

from _common import (REPO, add_malloc_option, build_official_predict, current_rss, emit, gib,
                     machine, malloc_env, max_abs_diff, parse_size, peak_rss, ratio_pairs,
                     ratio_table, reference_model, reset_peak_rss, run_worker, sci, worker_setup)

SCRIPT = osp.abspath(__file__)
LARGE_PIXELS = 512 * 512
# mmagic.models.Restormer, motion deblurring (GoPro) settings of the Restormer paper.
RESTORMER_CFG = dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
                     num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66,
                     bias=False, LayerNorm_type='WithBias')
# The HI-Diff GoPro model: every default of HIDiffTransformer / LatentPriorHead.
HIDIFF_CFG = dict(type='HIDiff', generator=dict(type='HIDiffTransformer'),
                  prior_head=dict(type='LatentPriorHead'),
                  data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.],
                                         std=[255., 255., 255.]))
MODEL_NAMES = dict(fast='HI-Diff, ours (fast path)', bf16='HI-Diff, ours (fast path, bf16)',
                   exact='HI-Diff, ours (exact path)', official='HI-Diff (official)',
                   restormer='Restormer (mmagic)')
HIDIFF_MODELS = ('fast', 'bf16', 'exact', 'official')


# --------------------------------------------------------------------------------- models
def save_weights(path: str) -> Dict:
    """Build the HI-Diff model with seed 0 and save its state dict (run in a subprocess)."""
    import torch
    from mmagic.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(HIDIFF_CFG)
    torch.save(model.state_dict(), path)
    return dict(weights=path, tensors=len(model.state_dict()))


def build_ours(weights: str, fast: bool, strip_pixels: Optional[int],
               precision: str = 'fp32') -> Tuple[Callable, int]:
    import torch
    from mmagic.registry import MODELS

    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    from hidiff_mm.models.layers.fast_path import DEFAULT_STRIP_PIXELS
    model = MODELS.build(HIDIFF_CFG).eval()
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    if fast:
        convert_to_fast(model, strip_pixels or DEFAULT_STRIP_PIXELS)
    else:
        convert_to_exact(model)
    head = model.prior_head
    params = sum(p.numel() for m in (model.generator, head.encoder_s2, head.denoiser)
                 for p in m.parameters())
    generator = torch.Generator()

    def predict(x):
        return model.forward_tensor(x, generator=generator.manual_seed(0), precision=precision)

    return predict, params


def build_restormer() -> Tuple[Callable, int]:
    from mmagic.models import Restormer
    model = Restormer(**RESTORMER_CFG).eval()
    return model, sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------- worker
def run_case(model: str, size: Tuple[int, int], repeats: int, warmup: bool, args) -> Dict:
    """Time one model at one size in this process (call it in a fresh one)."""
    import gc

    import torch
    label = f'{model} {size[1]}x{size[0]}'
    if model in ('fast', 'exact', 'bf16'):
        forward, params = build_ours(args.weights, model != 'exact', args.strip_pixels,
                                     'bf16' if model == 'bf16' else 'fp32')
    elif model == 'official':
        forward, params = build_official_predict(args.official, args.weights)
    elif model == 'restormer':
        forward, params = build_restormer()
    else:
        raise ValueError(f'unknown model {model!r}')
    gc.collect()
    peak_reset = reset_peak_rss()
    rss_model = current_rss()
    torch.manual_seed(0)
    x = torch.rand(1, 3, *size)
    times, cpu_times = [], []
    with torch.no_grad():
        for i in range(repeats + warmup):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = forward(x)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            assert out.shape == x.shape, (out.shape, x.shape)
            if i == 0 and args.output:
                torch.save(out, args.output)
            del out
            what = 'warm-up' if warmup and i == 0 else f'run {i + 1 - warmup}/{repeats}'
            print(f'  [{label}] {what}: {elapsed:.2f} s wall, {cpu:.2f} s CPU',
                  file=sys.stderr, flush=True)
            if i >= warmup:
                times.append(elapsed)
                cpu_times.append(cpu)
    peak = peak_rss()
    return dict(model=model, height=size[0], width=size[1], params=params,
                threads=args.threads, warmup=warmup, times_s=times,
                median_s=statistics.median(times), cpu_times_s=cpu_times,
                median_cpu_s=statistics.median(cpu_times), rss_model_bytes=rss_model,
                peak_rss_bytes=peak, peak_minus_model_bytes=peak - rss_model,
                peak_reset=peak_reset)


# --------------------------------------------------------------------------------- driver
def case_plan(size: Tuple[int, int], args) -> Tuple[int, bool]:
    """(timed repeats, warm-up?) for one size."""
    if args.repeats_large is not None and size[0] * size[1] > LARGE_PIXELS:
        return args.repeats_large, False
    return args.repeats, True


def worker_args(model: str, size: Tuple[int, int], args, output: str) -> List[str]:
    repeats, warmup = case_plan(size, args)
    cmd = ['--worker', model, '--sizes', f'{size[1]}x{size[0]}', '--repeats', str(repeats),
           '--threads', str(args.threads), '--weights', args.weights, '--output', output]
    if not warmup:
        cmd += ['--no-warmup']
    if args.official:
        cmd += ['--official', args.official]
    if args.strip_pixels is not None:
        cmd += ['--strip-pixels', str(args.strip_pixels)]
    return cmd


def add_diffs(results: List[Dict], outputs: Dict, reference: Optional[str]) -> None:
    """Each HI-Diff result gets ``max_abs_diff`` of its output against the reference's."""
    import torch
    for r in results:
        key = (r['width'], r['height'])
        ref_path = outputs.get(key + (reference, ))
        r['reference'] = reference
        r['max_abs_diff'] = None
        if r['model'] in HIDIFF_MODELS and ref_path:
            out = torch.load(outputs[key + (r['model'], )], weights_only=True)
            r['max_abs_diff'] = max_abs_diff(out, torch.load(ref_path, weights_only=True))


def format_tables(results: List[Dict], meta: Dict) -> str:
    """Markdown: one row per case, then the ratios of each model pair per size."""
    reference = meta['reference']
    ref_name = MODEL_NAMES[reference] if reference else 'n/a'
    out = [f"CPU, {meta['threads']} thread(s), torch {meta['torch']}, fp32, batch 1, "
           f"{meta['timing']}; {meta['cpu']}", '']
    if 'bf16' in meta['models']:
        out += [f"bf16: {meta['bf16']}", '']
    out += [
           '| input (WxH) | model | params | wall time (median) | CPU time (median) | runs '
           f'| peak RSS - RSS after build | peak RSS | max abs diff vs {ref_name} |',
           '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        diff = ('0 (reference)' if r['model'] == reference else sci(r.get('max_abs_diff')))
        out.append(f"| {r['width']}x{r['height']} | {MODEL_NAMES[r['model']]} | "
                   f"{r['params'] / 1e6:.2f} M | {r['median_s']:.2f} s | "
                   f"{r['median_cpu_s']:.2f} s | {len(r['times_s'])}"
                   f"{'' if r['warmup'] else ' (no warm-up)'} | "
                   f"{gib(r['peak_minus_model_bytes'])} | {gib(r['peak_rss_bytes'])} | {diff} |")
    pairs = ratio_pairs(meta['models'], reference)
    if 'bf16' in meta['models'] and 'fast' in meta['models']:
        pairs.append(('bf16', 'fast'))
    if 'fast' in meta['models'] and 'restormer' in meta['models']:
        pairs.append(('fast', 'restormer'))
    if pairs:
        sizes = sorted({(r['width'], r['height']) for r in results}, key=lambda s: s[0] * s[1])
        rows = [(f'{w}x{h}',
                 {r['model']: r for r in results if (r['width'], r['height']) == (w, h)})
                for w, h in sizes]
        out += [''] + ratio_table('input (WxH)', rows, pairs)
    out += ['', 'memory = peak RSS of the timed forwards minus the RSS right after model '
            'construction (activations and workspace); CPU time = process time of all threads '
            '(less sensitive than wall time to other load on the machine); max abs diff = '
            'largest absolute difference of the output of the first forward against the '
            'reference model (same weights, input and sampler noise).']
    return '\n'.join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CPU inference time, peak memory and output difference of HI-Diff: '
        'fast path, exact path and the official code')
    add_malloc_option(parser)
    parser.add_argument('--sizes', nargs='+', type=parse_size,
                        default=[parse_size('256x256'), parse_size('1280x720')],
                        help='input sizes WxH (default 256x256 1280x720)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed forwards per case, after 1 warm-up (default 3)')
    parser.add_argument('--repeats-large', type=int, default=None,
                        help='for sizes above 512x512 pixels: this many timed forwards and no '
                        'warm-up (default: as --repeats, with a warm-up)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    parser.add_argument('--official', default=None,
                        help='local checkout of the official HI-Diff repository: also run it '
                        'and use it as the reference')
    parser.add_argument('--models', nargs='+', choices=list(MODEL_NAMES), default=None,
                        help='models to run (default: fast exact, plus official with '
                        '--official; bf16 on request)')
    parser.add_argument('--strip-pixels', type=int, default=None,
                        help='row-strip size of the fast path (default: the module default)')
    parser.add_argument('--json', default=None, help='also write the raw results here')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--weights', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--output', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--no-warmup', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.repeats_large is not None and args.repeats_large < 1):
        parser.error('--repeats and --repeats-large must be >= 1')
    if args.official is not None:
        args.official = osp.abspath(args.official)
    return args


def main(argv=None) -> List[Dict]:
    args = parse_args(argv)
    if args.worker:
        worker_setup(args.threads)
        if args.worker == 'init':
            result = save_weights(args.weights)
        else:
            result = run_case(args.worker, args.sizes[0], args.repeats, not args.no_warmup,
                              args)
        emit(result)
        return [result]

    models = args.models or ['fast', 'exact'] + (['official'] if args.official else [])
    if 'official' in models and not args.official:
        raise SystemExit('--models official needs --official PATH')
    reference = reference_model(models)
    results, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix='hidiff_bench_') as tmp:
        args.weights = osp.join(tmp, 'hidiff_seed0.pth')
        if any(m in HIDIFF_MODELS for m in models):
            print('Building the HI-Diff weights (seed 0) ...', file=sys.stderr, flush=True)
            run_worker(SCRIPT, ['--worker', 'init', '--weights', args.weights], args.threads)
        for size in args.sizes:
            for model in models:
                print(f'{MODEL_NAMES[model]} at {size[1]}x{size[0]} (fresh process) ...',
                      file=sys.stderr, flush=True)
                output = osp.join(tmp, f'out_{model}_{size[1]}x{size[0]}.pt')
                results.append(run_worker(SCRIPT, worker_args(model, size, args, output),
                                          args.threads, malloc_env(args.malloc, model)))
                outputs[(size[1], size[0], model)] = output
                r = results[-1]
                print(f"  -> median {r['median_s']:.2f} s, peak RSS {gib(r['peak_rss_bytes'])}"
                      f" (+{gib(r['peak_minus_model_bytes'])} over the built model)",
                      file=sys.stderr, flush=True)
        add_diffs(results, outputs, reference)
    import torch
    timing = f'median of {args.repeats} after 1 warm-up'
    if args.repeats_large is not None:
        timing += (f' (sizes above 512x512: median of {args.repeats_large}, no warm-up)')
    sys.path.insert(0, REPO)
    from hidiff_mm.models.layers.bf16 import cpu_bf16_feature
    unit, why = cpu_bf16_feature()
    bf16 = f'ran on {why}' if unit else f'ran fp32: {why}'
    meta = dict(bf16=bf16, threads=args.threads, repeats=args.repeats,
                repeats_large=args.repeats_large,
                timing=timing, torch=torch.__version__, cpu=machine(args.malloc), models=models,
                reference=reference, official=args.official, strip_pixels=args.strip_pixels)
    print(format_tables(results, meta))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
