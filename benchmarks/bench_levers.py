"""What each lever of the Transformer's fast path gives, measured side by side on CPU or GPU.

Usage::

    python benchmarks/bench_levers.py [--size 256] [--repeats 3] [--model-repeats 2] \
        [--threads 2] [--device cpu|cuda] [--no-compile] [--compile-dynamic] \
        [--compile-freezing] [--compile-cache DIR] [--json out.json]

``--device cuda`` builds every module and tensor there (``torch.set_default_device``) and
synchronises around each timed call, so the same levers (channels-last, fused layer norm, the
fast MDTA / GDFN, HIM by ``scaled_dot_product_attention`` or folded, ``torch.compile``) are
measured one by one on a GPU; the CPU-time column is then the host's.

Everything runs in this one process, fp32, batch 1, ``torch.no_grad()``, random weights
(``torch.manual_seed(0)``), ``torch.set_num_threads(--threads)``. Shapes are the GoPro model's
(dim 48, heads 1/2/4/8, GDFN expansion 2.66, prior 16 tokens x 256): the level-1 map
``48 x S x S`` and the decoder-1 / refinement map ``96 x S x S`` (``S = --size``), both with one
head. Cases (the first variant of each is the baseline of its speed-up column):

* ``layernorm``: the official formula (``var``/``mean`` over the channel axis of an NCHW map)
  vs ``F.layer_norm`` on the same NCHW map vs ``F.layer_norm`` on a channels-last map.
* ``conv``: MDTA's ``qkv`` 1x1 and ``qkv_dwconv`` 3x3 depthwise, GDFN's ``project_in`` 1x1 and
  ``dwconv`` 3x3 depthwise, each on an NCHW vs a channels-last input.
* ``mdta`` / ``gdfn``, each with its layer norm and residual (``x + module(norm(x))``, i.e.
  ``forward_residual`` as the block calls it): the exact forwards on NCHW maps; the exact
  forwards on channels-last maps (what channels-last alone gives); the exact module after the
  fused layer norm, channels-last; the fast forward (MDTA: per-head Gram matrices,
  ``project_out`` folded into the attention matrix, residual inside the GEMM; GDFN: the gate
  halves one after the other, in place, ``project_out`` + residual as one ``addmm``).
* ``him``: the exact forward vs a textbook variant written here (channels-last tokens, fused
  layer norms, the official q / kv / proj Linear layers around ``F.scaled_dot_product_attention``)
  vs the fast forward (q and proj folded into the 16 prior tokens: two GEMMs over the pixels).
* ``block``: one ``HIDiffTransformerBlock`` at each width, exact (NCHW) vs fast.
* ``model``: the whole GoPro ``HIDiffTransformer`` on a ``3 x S x S`` image: exact, fast and
  (unless ``--no-compile``) the fast model under ``torch.compile(model.forward,
  backend='inductor')``, static shapes unless ``--compile-dynamic`` (``CompileGeneratorHook``'s
  default), with inductor's inference-only ``freezing`` if ``--compile-freezing``; timed over
  ``--model-repeats`` rounds. The compiled row's note gives its speed-up over the eager fast model;
  the extra ``first call`` row is the compile time (it includes one forward), from a fresh
  temporary inductor cache (a cold compile, as a new machine or a new torch version sees it)
  unless ``--compile-cache DIR`` is given. A compile error becomes a row instead of stopping
  the run. The compile takes minutes on two cores; ``--no-compile`` skips it.

Timing: one warm-up call per variant, then ``--repeats`` rounds that call every variant of a
case once in turn (so a change of machine load hits all variants alike); the medians of wall
time (``time.perf_counter``) and of this process's CPU time over all threads
(``time.process_time``) are reported. On a machine shared with other jobs both are inflated:
the OpenMP threads wait, spinning, at each barrier for a thread that is not scheduled, so CPU
time tracks wall time; small ops suffer most (``--threads 1`` avoids the barriers). *max abs
diff* is ``max |out - out_baseline|`` (the exact module, or the NCHW op). Progress goes to
stderr, the Markdown table to stdout.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import hidiff_mm  # noqa: F401  # isort: skip  (compat layer first; registers HI-Diff)
import torch
import torch.nn.functional as F
from torch import nn

from hidiff_mm.models.backbones.hidiff_blocks import GDFN, MDTA, HIDiffTransformerBlock
from hidiff_mm.models.backbones.hidiff_transformer import HIDiffTransformer
from hidiff_mm.models.layers import HIM, HIDiffLayerNorm, convert_to_exact, convert_to_fast
from hidiff_mm.models.layers.fast_path import channels_last, from_nhwc, nhwc

DIM = 48
PRIOR = (16, 256)
EXPANSION = 2.66


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=256,
                        help='side S of the square maps and image (multiple of 8; default 256)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed rounds per layer / block case (default 3)')
    parser.add_argument('--model-repeats', type=int, default=2,
                        help='timed rounds of the whole-model and compile cases (default 2)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or a CUDA device")
    parser.add_argument('--no-compile', action='store_true', help='skip the torch.compile case')
    parser.add_argument('--compile-dynamic', action='store_true',
                        help='compile with dynamic=True (CompileGeneratorHook\'s default)')
    parser.add_argument('--compile-freezing', action='store_true',
                        help='compile with inductor\'s freezing (weights folded in as constants, '
                        'oneDNN weight prepacking): inference only')
    parser.add_argument('--compile-cache', default=None,
                        help='inductor cache directory to use (default: a fresh temporary one)')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    args = parser.parse_args(argv)
    if args.size < 8 or args.size % 8:
        parser.error(f'--size must be a positive multiple of 8, got {args.size}')
    if args.repeats < 1 or args.model_repeats < 1:
        parser.error('--repeats and --model-repeats must be >= 1')
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ measuring
def sync() -> None:
    """Wait for the GPU's queued work (a no-op on CPU)."""
    if torch.get_default_device().type == 'cuda':
        torch.cuda.synchronize()


def measure(variants: Dict[str, Callable], repeats: int,
            warm: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, Dict]:
    """Warm up each variant, then ``repeats`` interleaved rounds; medians in ms + outputs.

    ``warm`` holds the outputs of variants that already ran (they skip the warm-up).
    """
    outs = dict(warm or {})
    wall, cpu = {k: [] for k in variants}, {k: [] for k in variants}
    for name, fn in variants.items():
        if name not in outs:
            outs[name] = fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            sync()
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {k: dict(wall_ms=1e3 * statistics.median(wall[k]),
                    cpu_ms=1e3 * statistics.median(cpu[k]), out=outs[k]) for k in variants}


def max_abs_diff(a, b) -> float:
    if a.shape != b.shape:
        return float('inf')
    return (a.double() - b.double()).abs().max().item()


def add_rows(rows: List[Dict], case: str, results: Dict[str, Dict]) -> None:
    """Rows of one case; speed-ups and differences against its first variant."""
    base_name = next(iter(results))
    base = results[base_name]
    for name, res in results.items():
        rows.append(dict(
            case=case, variant=name, baseline=name == base_name, wall_ms=res['wall_ms'],
            cpu_ms=res['cpu_ms'],
            speedup_wall=base['wall_ms'] / res['wall_ms'],
            speedup_cpu=base['cpu_ms'] / res['cpu_ms'] if res['cpu_ms'] > 0 else None,
            max_abs_diff=None if name == base_name else max_abs_diff(res['out'], base['out']),
            note=res.get('note', '')))
    log(f'  {case}: ' + ', '.join(f'{r["variant"]} {r["wall_ms"]:.1f} ms'
                                  for r in rows[-len(results):]))


# ------------------------------------------------------------------------------ the cases
def him_sdpa(him, x, prior):
    """HIM the textbook way: channels-last tokens, fused layer norms, the official projections
    and one ``F.scaled_dot_product_attention`` call. Same parameters and result as ``him``."""
    b, c, h, w = x.shape
    heads, d = him.num_heads, c // him.num_heads
    n = prior.shape[1]
    tokens = nhwc(channels_last(x)).reshape(b, h * w, c)
    q = him.q(him.norm1.body.fused(tokens)).view(b, h * w, heads, d).transpose(1, 2)
    k, v = him.kv(him.norm2.body.fused(prior)).chunk(2, dim=-1)
    k = k.reshape(b, n, heads, d).transpose(1, 2)
    v = v.reshape(b, n, heads, d).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, scale=him.scale)
    out = tokens + him.proj(out.transpose(1, 2).reshape(b, h * w, c))
    return from_nhwc(out, h, w)


def switched(fn: Callable, *settings: Tuple[nn.Module, bool]) -> Callable:
    """``fn`` run after ``convert_to_fast(module)`` (fast True) or ``convert_to_exact(module)``
    (False) for each ``(module, fast)`` in turn."""
    def run():
        for module, fast in settings:
            (convert_to_fast if fast else convert_to_exact)(module)
        return fn()
    return run


def layer_cases(rows: List[Dict], size: int, repeats: int) -> None:
    prior = torch.randn(1, *PRIOR)
    for c in (DIM, 2 * DIM):
        shape = f'{c}x{size}x{size}'
        x = torch.randn(1, c, size, size)
        xc = channels_last(x)

        norm = HIDiffLayerNorm(c)
        nn.init.normal_(norm.body.weight)
        nn.init.normal_(norm.body.bias)
        add_rows(rows, f'layernorm {shape}', measure({
            'official var/mean, NCHW': switched(lambda: norm(x), (norm, False)),
            'F.layer_norm, NCHW': switched(lambda: norm(x), (norm, True)),
            'F.layer_norm, channels-last': switched(lambda: norm(xc), (norm, True)),
        }, repeats))

        hidden = int(c * EXPANSION)
        convs = [('1x1 qkv', nn.Conv2d(c, 3 * c, 1, bias=False), x, xc)]
        t = torch.randn(1, 3 * c, size, size)
        convs.append(('3x3 dw qkv', nn.Conv2d(3 * c, 3 * c, 3, padding=1, groups=3 * c,
                                              bias=False), t, channels_last(t)))
        convs.append(('1x1 project_in', nn.Conv2d(c, 2 * hidden, 1, bias=False), x, xc))
        t = torch.randn(1, 2 * hidden, size, size)
        convs.append(('3x3 dw ffn', nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1,
                                              groups=2 * hidden, bias=False),
                      t, channels_last(t)))
        del t
        for name, conv, a, ac in convs:
            add_rows(rows, f'conv {name} {a.shape[1]}->{conv.out_channels} @{size}', measure({
                'NCHW': lambda: conv(a), 'channels-last': lambda: conv(ac)}, repeats))
        del convs

        for label, module in (('mdta', MDTA(c, 1)), ('gdfn', GDFN(c, EXPANSION))):
            norm = HIDiffLayerNorm(c)
            nn.init.normal_(norm.body.weight)
            nn.init.normal_(norm.body.bias)

            def run(inp, module=module, norm=norm):
                return module.forward_residual(inp, norm)  # inp + module(norm(inp))
            add_rows(rows, f'{label} + layer norm + residual {shape}', measure({
                'exact, NCHW': switched(lambda: run(x), (module, False), (norm, False)),
                'exact, channels-last': switched(lambda: run(xc), (module, False),
                                                 (norm, False)),
                'exact + fused LN, channels-last': switched(lambda: run(xc), (module, False),
                                                            (norm, True)),
                'fast': switched(lambda: run(xc), (module, True), (norm, True)),
            }, repeats))

        him = HIM(c, 1, PRIOR[1])
        nn.init.normal_(him.proj.bias, std=0.1)
        add_rows(rows, f'him {shape} + prior 16x256', measure({
            'exact': switched(lambda: him(x, prior), (him, False)),
            'SDPA (textbook)': lambda: him_sdpa(him, x, prior),
            'fast (folded)': switched(lambda: him(xc, prior), (him, True)),
        }, repeats))

        block = HIDiffTransformerBlock(c, 1, EXPANSION)
        add_rows(rows, f'block {shape}', measure({
            'exact': switched(lambda: block(x), (block, False)),
            'fast': switched(lambda: block(xc), (block, True)),
        }, repeats))


def model_cases(rows: List[Dict], args: argparse.Namespace) -> None:
    """The whole GoPro Transformer: exact, fast and (unless ``--no-compile``) compiled fast."""
    model = HIDiffTransformer().eval()
    img = torch.rand(1, 3, args.size, args.size)
    prior = torch.randn(1, *PRIOR)
    case = f'model HIDiffTransformer 3x{args.size}x{args.size}'
    variants = {'exact': switched(lambda: model(img, prior), (model, False)),
                'fast': switched(lambda: model(img, prior), (model, True))}
    warm, first, error = {}, None, None
    if not args.no_compile:
        convert_to_fast(model)
        label, compiled, first = compile_first_call(model, img, prior, args)
        if compiled is None:
            first, error = None, first
        else:
            variants[label] = switched(lambda: compiled(img, prior), (model, True))
            warm[label] = first.pop('out')
    add_rows(rows, case, measure(variants, args.model_repeats, warm))
    if error is not None:
        rows.append(dict(case=case, variant=label, wall_ms=None, cpu_ms=None,
                         speedup_wall=None, speedup_cpu=None, max_abs_diff=None,
                         note=f'failed: {error}'))
    elif first is not None:
        fast, comp = rows[-2], rows[-1]
        comp['note'] = (f"speed-up over eager fast: {fast['wall_ms'] / comp['wall_ms']:.2f} "
                        f"(wall), {fast['cpu_ms'] / comp['cpu_ms']:.2f} (CPU)")
        rows.append(dict(case=case, variant=f'{label}: first call', speedup_wall=None,
                         speedup_cpu=None, max_abs_diff=None, **first,
                         note='compile + one forward, cold inductor cache'
                         if args.compile_cache is None else
                         f'compile + one forward, inductor cache {args.compile_cache}'))


def compile_first_call(model: nn.Module, img: torch.Tensor, prior: torch.Tensor,
                       args: argparse.Namespace) -> Tuple[str, Optional[Callable], object]:
    """``(label, compiled forward, first-call times and output)``; on failure ``(label, None,
    error message)``. The inductor cache is a fresh temporary directory unless given."""
    label = (f'fast + torch.compile (inductor, dynamic={bool(args.compile_dynamic)}'
             + (', freezing)' if args.compile_freezing else ')'))
    cache = args.compile_cache or tempfile.mkdtemp(prefix='bench_levers_inductor_')
    os.environ['TORCHINDUCTOR_CACHE_DIR'] = cache
    log(f'  compiling: {label}, cache {cache}; on 2 CPUs this takes minutes')
    try:
        from torch._inductor import config as inductor_config
        compiled = torch.compile(model.forward, backend='inductor',
                                 dynamic=bool(args.compile_dynamic))
        with inductor_config.patch(freezing=bool(args.compile_freezing)):
            w0, c0 = time.perf_counter(), time.process_time()
            out = compiled(img, prior)
            sync()
            first = dict(wall_ms=1e3 * (time.perf_counter() - w0),
                         cpu_ms=1e3 * (time.process_time() - c0), out=out)
    except Exception as err:  # no C++ compiler, an unsupported op, ...
        lines = str(err).strip().splitlines() or ['']
        msg = f'{type(err).__name__}: {lines[0][:200]}'
        log(f'  torch.compile failed: {msg}')
        return label, None, msg
    log(f"  first call (compile + forward): {first['wall_ms'] / 1e3:.1f} s")
    return label, compiled, first


# ------------------------------------------------------------------------------ report
def fmt(value: Optional[float], spec: str) -> str:
    return 'n/a' if value is None else format(value, spec)


def table(rows: List[Dict]) -> str:
    lines = ['| case | variant | wall ms (median) | CPU ms (median) | speed-up (wall) | '
             'speed-up (CPU) | max abs diff | note |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        diff = '(baseline)' if r.get('baseline') else fmt(r['max_abs_diff'], '.1e')
        lines.append(f"| {r['case']} | {r['variant']} | {fmt(r['wall_ms'], '.1f')} | "
                     f"{fmt(r['cpu_ms'], '.1f')} | {fmt(r['speedup_wall'], '.2f')} | "
                     f"{fmt(r['speedup_cpu'], '.2f')} | {diff} | {r['note']} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    torch.set_default_device(args.device)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows: List[Dict] = []
    with torch.no_grad():
        log('layers and blocks ...')
        layer_cases(rows, args.size, args.repeats)
        log('whole model ...')
        try:
            model_cases(rows, args)
        finally:
            cache = os.environ.get('TORCHINDUCTOR_CACHE_DIR', '')
            if args.compile_cache is None and 'bench_levers_inductor_' in cache:
                shutil.rmtree(cache, ignore_errors=True)
    meta = dict(size=args.size, repeats=args.repeats, model_repeats=args.model_repeats,
                threads=args.threads, device=args.device, torch=torch.__version__,
                python=platform.python_version(),
                cpus=os.cpu_count(), load_avg_before=load_before, load_avg_after=os.getloadavg(),
                total_s=time.perf_counter() - start)
    print(f"torch {meta['torch']}, device {args.device}, {args.threads} threads, "
          f"{meta['cpus']} logical CPUs, "
          f"size {args.size}, {args.repeats} repeats ({args.model_repeats} for the model), "
          'load average (1/5/15 min) before '
          + '/'.join(f'{v:.1f}' for v in load_before) + ', after '
          + '/'.join(f'{v:.1f}' for v in meta['load_avg_after'])
          + f", total {meta['total_s']:.0f} s\n")
    print(table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
