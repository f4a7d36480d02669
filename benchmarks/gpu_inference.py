"""GPU check, part (a) inference in eager mode, or with ``--compile`` part (d), of HI-Diff.

Usage (``benchmarks/gpu_check.sh`` runs it on a GPU machine)::

    python benchmarks/gpu_inference.py [--out DIR] [--budget S] [--sizes 256x256 1280x720]
    python benchmarks/gpu_inference.py --compile [--compile-sizes ...] [--compile-mode default]
    python benchmarks/gpu_inference.py --cpu --tiny      # CPU smoke run

(a) The Transformer alone (``model.generator(img, prior)`` with a fixed prior) and the whole
blind prediction (``model.forward_tensor``: prior sampled from a seeded ``z_T``, reflect padding,
Transformer) of the GoPro model (random weights, seed 0) at ``--sizes`` (WxH), fp32 vs bf16
autocast, fast vs exact form (``convert_to_fast`` / ``convert_to_exact``: each case converts the
model explicitly, so the fast form really runs on the GPU), under ``torch.no_grad``. Median of
``--repeats`` runs after one warm-up (``torch.cuda.synchronize`` around each), peak GPU memory
(``torch.cuda.max_memory_allocated``, weights included) and the max abs difference of the
output from the fp32 exact-path output.

(d) ``--compile``: ``torch.compile`` of the Transformer (``--compile-mode``; the whole model then
runs it too), the same cases at ``--compile-sizes``, fast path first; the compile time (first
call) is reported apart from the median; cases past ``--budget`` are listed as skipped.

Each case is guarded: a failure prints its traceback and the run goes on. Writes
``OUT/gpu_a.json`` (or ``gpu_d.json``); ``gpu_report.py`` makes the tables.
"""
import time
from typing import Dict, List

from _common import (Clock, autocast, build_model, gpu_args, gpu_parser, guarded, parse_size,
                     peak_gib, reset_peak, run_part, set_form, sync, timed)

EAGER_VARIANTS = [('fp32', False), ('fp32', True), ('bf16', False), ('bf16', True)]
COMPILE_VARIANTS = [('fp32', True), ('bf16', True), ('fp32', False), ('bf16', False)]


def inference_cases(model, device, args, clock: Clock, results: List[Dict], compiled: bool,
                    sizes: List[str], until: float) -> None:
    """Part (a) (eager) or (d) (compiled Transformer), in order of priority: sizes as given,
    then the variants, then Transformer alone before the whole model."""
    import torch

    part = 'd' if compiled else 'a'
    inputs, refs = {}, {}

    def data(size):
        if size not in inputs:
            h, w = parse_size(size)
            img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
            with torch.no_grad():
                prior = model.prior_head(
                    img, generator=torch.Generator(device=device).manual_seed(0))
            inputs[size] = img, prior
        return inputs[size]

    def caller(net, which, size, dtype):
        img, prior = data(size)

        def run():
            with torch.no_grad(), autocast(device, dtype):
                if which == 'transformer':
                    return net(img, prior)
                generator = torch.Generator(device=device).manual_seed(0)
                return model.forward_tensor(img, generator=generator)
        return run

    def reference(which, size):
        """The fp32 exact-path eager output (part (a) records it as its first case)."""
        if (which, size) not in refs:
            set_form(model, False)
            refs[(which, size)] = caller(model.generator, which, size, 'fp32')().float()
        return refs[(which, size)]

    variants = COMPILE_VARIANTS if compiled else EAGER_VARIANTS
    plan = [(size, which, dtype, fast) for size in sizes for dtype, fast in variants
            for which in ('transformer', 'hidiff')]
    if not compiled:  # eager: both models of a size together, fp32 exact first
        plan.sort(key=lambda c: (sizes.index(c[0]), c[1] != 'transformer'))
    for size, which, dtype, fast in plan:
        row = dict(part=part, model=which, size=size, dtype=dtype,
                   path='fast' if fast else 'exact', mode='compile' if compiled else 'eager')
        if clock.left(until) <= (args.compile_min_s if compiled else 0):
            row['status'] = 'skipped (time budget)'
            results.append(row)
            continue

        def case(which=which, size=size, dtype=dtype, fast=fast):
            ref = reference(which, size) if compiled or dtype != 'fp32' or fast else None
            set_form(model, fast)
            original, extra = model.generator, {}
            if compiled:
                torch._dynamo.reset()
                model.generator = torch.compile(original, mode=args.compile_mode)
            try:  # the whole model runs the compiled Transformer too
                run = caller(model.generator, which, size, dtype)
                if compiled:
                    t = time.perf_counter()
                    run()
                    sync(device)
                    extra['compile_s'] = time.perf_counter() - t
                reset_peak(device)
                median, out = timed(run, device, args.repeats)
            finally:
                model.generator = original
            out = out.float()
            if ref is None:
                ref = refs[(which, size)] = out
            result = dict(median_ms=median * 1e3, peak_gib=peak_gib(device),
                          max_abs_diff=(out - ref).abs().max().item(), **extra)
            bad = out.numel() - int(torch.isfinite(out).sum())
            if bad:
                result['status'] = f'{bad} of {out.numel()} outputs non-finite'
            return result

        guarded(results, row, case)


def main(argv=None) -> List[Dict]:
    parser = gpu_parser(__doc__.split('\n\n')[0])
    parser.add_argument('--compile', action='store_true',
                        help='part (d): torch.compile the Transformer (default: (a), eager)')
    args = gpu_args(parser, argv)
    sizes = args.compile_sizes if args.compile else args.sizes
    return run_part('d' if args.compile else 'a', args, lambda device, clock, rows: inference_cases(
        build_model(args.tiny, device), device, args, clock, rows, args.compile, sizes,
        args.budget))


if __name__ == '__main__':
    main()
