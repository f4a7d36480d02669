"""CPU training-step benchmark of HI-Diff, stage 1 and 2: fast path vs. exact path vs. official.

Usage::

    python benchmarks/bench_train_step.py [--batch 2] [--patch 64] [--iters 3] [--threads 2] \
        [--stages 1 2] [--official PATH] [--models fast bf16 exact official] [--with-cp] \
        [--bf16] \
        [--json results.json]

One training step = forward, loss, backward, grad-norm clip 0.01, AdamW update (lr 2e-4,
weight decay 1e-4, betas 0.9/0.999), on ``--batch`` random ``3 x --patch x --patch`` pairs
(uint8 images; blurry and sharp drawn independently from a fixed seed, the same every step).

Models (``--models``; default ``fast exact`` plus ``official`` when ``--official`` is given):

* ``fast`` / ``exact``: this repository's ``HIDiff`` editor built from ``--config`` (the GoPro
  model), converted to its fast form or to the exact reference form
  (``hidiff_mm.models.layers.convert_to_fast`` / ``convert_to_exact``); ``set_stage(stage)``,
  an ``OptimWrapper`` built from the config's ``optim_wrapper``, and
  ``model.train_step(data, optim_wrapper)`` (data preprocessor: uint8 / 255). The memory
  levers apply to these two: ``--with-cp`` sets the Transformer's activation checkpointing
  (``generator.with_cp``), ``--bf16`` trains through the bf16 ``AmpOptimWrapper`` of
  ``configs/hidiff/hidiff_gopro_amp.py`` (CPU autocast; its CUDA check is lifted on CPU).
* ``bf16``: the fast path trained through that bf16 ``AmpOptimWrapper`` whatever ``--bf16``
  says, so that ``--models fast bf16`` measures bf16 autocast against fp32 in one run (the
  table adds bf16 / fast).
* ``official`` (needs ``--official PATH``, a local checkout of github.com/zhengchen1999/HI-Diff
  read at run time, never copied): the official GoPro networks ``net_g``, ``net_le`` (and for
  stage 2 ``net_le_dm``, ``net_d``) trained the way ``HI_Diff_S1.optimize_parameters`` and
  ``HI_Diff_S2.optimize_parameters`` do it (``apply_ldm: False``):

  * stage 1: ``prior = net_le(lq, gt)``; loss = L1(net_g(lq, prior), gt); net_g and net_le
    train.
  * stage 2: net_le frozen; ``prior_z = net_le(lq, gt)``; ``prior = p_sample_loop`` from
    ``q_sample(prior_z, alphas_cumprod[T-1], randn_like(prior_z))`` conditioned on
    ``net_le_dm(lq)`` (8 steps, with gradients); loss = L1(net_g(lq, prior), gt) +
    L1(prior_z, prior); net_g, net_le_dm and net_d train.

Identical weights, inputs and noise: a first subprocess builds the editor with
``torch.manual_seed(0)`` and saves its state dict; every worker loads it (the official networks
through the official key names). Before step ``i`` every worker calls ``torch.manual_seed(100 +
i)``, so the stage-2 noise (the only random draw of a step) is the same. For the first step each
worker records the loss and the gradient of net_g's output conv weight (before clipping); the
parent reports their max abs difference against the reference (``official`` when it ran, else
``exact``): a check that the models train the same function.

Each (model, stage) case runs in a fresh subprocess with ``torch.set_num_threads(--threads)``
(and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``): one warm-up step, then the median wall and CPU
time of ``--iters`` steps. Peak RSS is the peak of the steps (reset with
``/proc/self/clear_refs`` once the networks are built and loaded; it includes the optimizer
state, made in the first step); *memory* is that peak minus the RSS right after building.
Markdown tables go to stdout, progress to stderr.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import (BF16_CONFIG, REPO, add_malloc_option, amp_on_cpu, build_official_step,
                     current_rss, emit, gib, machine, make_pairs, malloc_env, max_abs_diff,
                     peak_rss, ratio_pairs, ratio_table, reference_model, reset_peak_rss,
                     run_worker, sci, worker_setup)

SCRIPT = osp.abspath(__file__)
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'hidiff', 'hidiff_s1_gopro.py')
MODEL_NAMES = dict(fast='HI-Diff, ours (fast path)',
                   bf16='HI-Diff, ours (fast path, bf16 autocast)',
                   exact='HI-Diff, ours (exact path)', official='HI-Diff (official)')
# options/train/GoPro_S{1,2}.yml: optim_total, use_grad_clip (clip_grad_norm_ 0.01).
STEP_SEED = 100

Step = Callable[[], float]


# --------------------------------------------------------------------------------- models
def save_weights(config: str, path: str) -> Dict:
    """Build the editor of ``config`` with seed 0 and save its state dict (in a subprocess)."""
    import torch
    from mmagic.registry import MODELS
    from mmengine.config import Config
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    torch.save(model.state_dict(), path)
    return dict(weights=path, tensors=len(model.state_dict()))


def build_ours(args, stage: int, fast: bool, bf16: bool) -> Tuple[Step, Any, int]:
    """(one training step -> loss, the output conv weight, trained parameter count)."""
    import torch
    from mmagic.registry import MODELS
    from mmagic.structures import DataSample
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(args.weights, weights_only=True), strict=True)
    (convert_to_fast if fast else convert_to_exact)(model.train())
    model.set_stage(stage)
    model.generator.with_cp = args.with_cp
    optim_cfg = Config.fromfile(BF16_CONFIG).optim_wrapper if bf16 else cfg.optim_wrapper
    with amp_on_cpu(torch.device('cpu')):
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    blur, sharp = make_pairs(args.batch, args.patch)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def step() -> float:
        data = dict(inputs=list(blur), data_samples=[DataSample(gt_img=s) for s in sharp])
        return float(model.train_step(data, optim_wrapper)['loss'])

    return step, model.generator.output.weight, trained


# --------------------------------------------------------------------------------- worker
def run_case(model: str, stage: int, args) -> Dict:
    """Time ``--iters`` training steps after one warm-up in this process (a fresh one)."""
    import gc

    import torch
    label = f'{model} stage {stage}'
    if model in ('fast', 'exact', 'bf16'):
        step, weight, trained = build_ours(args, stage, model != 'exact',
                                           args.bf16 or model == 'bf16')
    elif model == 'official':
        step, weight, trained = build_official_step(args, stage)
    else:
        raise ValueError(f'unknown model {model!r}')
    grads = []
    handle = weight.register_hook(lambda g: grads.append(g.detach().clone()) if not grads
                                  else None)
    gc.collect()
    peak_reset = reset_peak_rss()
    rss_model = current_rss()
    times, cpu_times, losses = [], [], []
    for i in range(args.iters + 1):
        torch.manual_seed(STEP_SEED + i)
        start, cpu_start = time.perf_counter(), time.process_time()
        losses.append(step())
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if i == 0:
            handle.remove()
            torch.save(grads[0], args.output)
        what = 'warm-up' if i == 0 else f'step {i}/{args.iters}'
        print(f'  [{label}] {what}: {elapsed:.2f} s wall, {cpu:.2f} s CPU, '
              f'loss {losses[-1]:.6f}', file=sys.stderr, flush=True)
        if i:
            times.append(elapsed)
            cpu_times.append(cpu)
    peak = peak_rss()
    return dict(model=model, stage=stage, batch=args.batch, patch=args.patch,
                threads=args.threads, trained_params=trained, losses=losses, times_s=times,
                median_s=statistics.median(times), cpu_times_s=cpu_times,
                median_cpu_s=statistics.median(cpu_times), rss_model_bytes=rss_model,
                peak_rss_bytes=peak, peak_minus_model_bytes=peak - rss_model,
                peak_reset=peak_reset)


# --------------------------------------------------------------------------------- driver
def add_diffs(results: List[Dict], grads: Dict, reference: Optional[str]) -> None:
    """First-step loss and output-conv gradient differences against the reference model."""
    import torch
    by_case = {(r['stage'], r['model']): r for r in results}
    for r in results:
        ref = by_case.get((r['stage'], reference))
        r['reference'] = reference
        r['loss_abs_diff'] = r['grad_max_abs_diff'] = None
        grad = torch.load(grads[(r['stage'], r['model'])], weights_only=True)
        r['grad_max_abs'] = grad.abs().max().item()
        if ref is not None:
            r['loss_abs_diff'] = abs(r['losses'][0] - ref['losses'][0])
            ref_grad = torch.load(grads[(r['stage'], reference)], weights_only=True)
            r['grad_max_abs_diff'] = max_abs_diff(grad, ref_grad)


def format_tables(results: List[Dict], meta: Dict) -> str:
    reference = meta['reference']
    ref_name = MODEL_NAMES[reference] if reference else 'n/a'
    levers = ('bf16 autocast' if meta['bf16'] else 'fp32') + (
        ', activation checkpointing' if meta['with_cp'] else '')
    out = [f"CPU, {meta['threads']} thread(s), torch {meta['torch']}, {levers} (ours), batch "
           f"{meta['batch']} x {meta['patch']}x{meta['patch']}, median of {meta['iters']} "
           f"step(s) after 1 warm-up; {meta['cpu']}", '',
           '| stage | model | trained params | wall time / step (median) '
           '| CPU time / step (median) | peak RSS - RSS after build | peak RSS '
           f'| first-step loss | loss diff vs {ref_name} '
           '| max abs grad diff (net_g output conv) | max abs grad |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        is_ref = r['model'] == reference
        out.append(
            f"| {r['stage']} | {MODEL_NAMES[r['model']]} | {r['trained_params'] / 1e6:.2f} M | "
            f"{r['median_s']:.2f} s | {r['median_cpu_s']:.2f} s | "
            f"{gib(r['peak_minus_model_bytes'])} | {gib(r['peak_rss_bytes'])} | "
            f"{r['losses'][0]:.6f} | "
            f"{'0 (reference)' if is_ref else sci(r['loss_abs_diff'])} | "
            f"{'0 (reference)' if is_ref else sci(r['grad_max_abs_diff'])} | "
            f"{sci(r['grad_max_abs'])} |")
    pairs = ratio_pairs(meta['models'], reference)
    if 'bf16' in meta['models'] and 'fast' in meta['models'] and not meta['bf16']:
        pairs.append(('bf16', 'fast'))
    if pairs:
        rows = [(str(stage), {r['model']: r for r in results if r['stage'] == stage})
                for stage in meta['stages']]
        out += [''] + ratio_table('stage', rows, pairs)
    out += ['', 'time = forward + loss + backward + clip + AdamW step; memory = peak RSS of the '
            'steps minus the RSS right after building the networks (activations, gradients, '
            'optimizer state); loss and gradient differences are taken at the first step (same '
            'weights, inputs and noise); the gradient is that of the output conv weight before '
            'clipping, and max abs grad is its scale.']
    return '\n'.join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CPU training-step time and memory of HI-Diff, stage 1 and 2: fast path, '
        'exact path and the official code')
    add_malloc_option(parser)
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='editor config (default: the GoPro stage-1 config; the official '
                        'networks are always the GoPro ones)')
    parser.add_argument('--batch', type=int, default=2, help='pairs per step (default 2)')
    parser.add_argument('--patch', type=int, default=64, help='patch size (default 64)')
    parser.add_argument('--iters', type=int, default=3,
                        help='timed steps per case, after 1 warm-up (default 3)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    parser.add_argument('--stages', nargs='+', type=int, choices=[1, 2], default=[1, 2])
    parser.add_argument('--official', default=None,
                        help='local checkout of the official HI-Diff repository: also train it '
                        'and use it as the reference')
    parser.add_argument('--models', nargs='+', choices=list(MODEL_NAMES), default=None,
                        help='models to run (default: fast exact, plus official with '
                        '--official)')
    parser.add_argument('--with-cp', action='store_true',
                        help='ours with activation checkpointing (generator.with_cp)')
    parser.add_argument('--bf16', action='store_true',
                        help='ours in bf16 autocast (the AmpOptimWrapper of hidiff_gopro_amp.py)')
    parser.add_argument('--json', default=None, help='also write the raw results here')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--weights', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--output', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.batch < 1 or args.patch < 8 or args.patch % 8:
        parser.error('--iters and --batch must be >= 1, --patch a multiple of 8')
    if args.official is not None:
        args.official = osp.abspath(args.official)
    args.config = osp.abspath(args.config)
    return args


def worker_args(model: str, stage: int, args, output: str) -> List[str]:
    cmd = ['--worker', model, '--stages', str(stage), '--config', args.config, '--batch',
           str(args.batch), '--patch', str(args.patch), '--iters', str(args.iters),
           '--threads', str(args.threads), '--weights', args.weights, '--output', output]
    cmd += ['--with-cp'] * args.with_cp + ['--bf16'] * args.bf16
    return cmd + (['--official', args.official] if args.official else [])


def main(argv=None) -> List[Dict]:
    args = parse_args(argv)
    if args.worker:
        worker_setup(args.threads)
        if args.worker == 'init':
            result = save_weights(args.config, args.weights)
        else:
            result = run_case(args.worker, args.stages[0], args)
        emit(result)
        return [result]

    models = args.models or ['fast', 'exact'] + (['official'] if args.official else [])
    if 'official' in models and not args.official:
        raise SystemExit('--models official needs --official PATH')
    reference = reference_model(models)
    results, grads = [], {}
    with tempfile.TemporaryDirectory(prefix='hidiff_bench_') as tmp:
        args.weights = osp.join(tmp, 'hidiff_seed0.pth')
        print('Building the HI-Diff weights (seed 0) ...', file=sys.stderr, flush=True)
        run_worker(SCRIPT, ['--worker', 'init', '--config', args.config, '--weights',
                            args.weights], args.threads)
        for stage in args.stages:
            for model in models:
                print(f'{MODEL_NAMES[model]}, stage {stage} (fresh process) ...',
                      file=sys.stderr, flush=True)
                grads[(stage, model)] = osp.join(tmp, f'grad_{model}_s{stage}.pt')
                results.append(run_worker(
                    SCRIPT, worker_args(model, stage, args, grads[(stage, model)]),
                    args.threads, malloc_env(args.malloc, model)))
                r = results[-1]
                print(f"  -> median {r['median_s']:.2f} s / step, peak RSS "
                      f"{gib(r['peak_rss_bytes'])} (+{gib(r['peak_minus_model_bytes'])} over "
                      'the built networks)', file=sys.stderr, flush=True)
        add_diffs(results, grads, reference)
    import torch
    meta = dict(threads=args.threads, batch=args.batch, patch=args.patch, iters=args.iters,
                stages=args.stages, torch=torch.__version__, cpu=machine(args.malloc),
                models=models,
                with_cp=args.with_cp, bf16=args.bf16,
                reference=reference, official=args.official, config=args.config)
    print(format_tables(results, meta))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
