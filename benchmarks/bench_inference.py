"""CPU inference benchmark: HI-Diff (GoPro) blind prediction vs. MMagic's Restormer.

Usage::

    python benchmarks/bench_inference.py [--sizes 256x256 1280x720] [--repeats 3] \
        [--threads 2] [--official PATH] [--json results.json]

Each case (model x size) runs in a fresh subprocess of this script: it builds the model
(fp32, random weights, eval mode), records its resident set size (RSS), runs one warm-up
forward and ``--repeats`` timed forwards under ``torch.no_grad()`` with
``torch.set_num_threads(--threads)``, and reports the median time and its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``), both absolute and minus the RSS right after model
construction. Every worker imports ``hidiff_mm`` (and so MMagic) first, so absolute peaks
share the same import baseline.

Models:

* ``hidiff``: the HI-Diff GoPro model's full blind prediction, ``HIDiff.forward_tensor``
  (stage-2 encoder + 8-step sampler + Transformer).
* ``restormer``: ``mmagic.models.Restormer`` with its motion-deblurring (GoPro) settings.
* ``official`` (only with ``--official PATH``, a local checkout of github.com/zhengchen1999/
  HI-Diff read at run time): the official GoPro networks (``Transformer``,
  ``latent_encoder_gelu``, ``denoising``) imported from ``PATH/hi_diff/archs`` with a stub
  ``basicsr.utils.registry.ARCH_REGISTRY`` made at run time, run as the official
  ``HI_Diff_S2.test()`` does (reflect pad to 8, ``LE_DM``, 8-step posterior-mean loop, ``net_g``).

``WxH`` sizes are width x height: ``1280x720`` is a (1, 3, 720, 1280) input.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
import warnings
from typing import Callable, Dict, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULT_TAG = 'BENCH_RESULT '

# mmagic.models.Restormer, motion deblurring (GoPro) settings of the Restormer paper.
RESTORMER_CFG = dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
                     num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66,
                     bias=False, LayerNorm_type='WithBias')
# The HI-Diff GoPro model: every default of HIDiffTransformer / LatentPriorHead.
HIDIFF_CFG = dict(type='HIDiff', generator=dict(type='HIDiffTransformer'),
                  prior_head=dict(type='LatentPriorHead'),
                  data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.],
                                         std=[255., 255., 255.]))
# options/test/GoPro.yml of the official release.
OFFICIAL_GOPRO = dict(
    net_g=dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[3, 5, 6, 6],
               num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66,
               bias=False, LayerNorm_type='WithBias', dual_pixel_task=False, embed_dim=64,
               group=4),
    net_le_dm=dict(in_chans=3, embed_dim=64, block_num=6, group=4, stage=2, patch_expansion=0.5,
                   channel_expansion=4),
    net_d=dict(in_channel=256, out_channel=256, inner_channel=512, block_num=4, group=4,
               patch_expansion=0.5, channel_expansion=2),
    timesteps=8, linear_start=0.1, linear_end=0.99)
MODEL_NAMES = dict(hidiff='HI-Diff (hidiff_mm)', restormer='Restormer (mmagic)',
                   official='HI-Diff (official)')


def parse_size(text: str) -> Tuple[int, int]:
    """``'WxH'`` -> ``(H, W)``."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 1280x720 (WxH), got {text!r}')
    return h, w


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError):
        return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


# --------------------------------------------------------------------------------- models
def build_hidiff() -> Tuple[Callable, int]:
    import torch
    from mmagic.registry import MODELS
    model = MODELS.build(HIDIFF_CFG).eval()
    head = model.prior_head
    params = sum(p.numel() for m in (model.generator, head.encoder_s2, head.denoiser)
                 for p in m.parameters())
    generator = torch.Generator().manual_seed(0)
    return lambda x: model.forward_tensor(x, generator=generator), params


def build_restormer() -> Tuple[Callable, int]:
    from mmagic.models import Restormer
    model = Restormer(**RESTORMER_CFG).eval()
    return model, sum(p.numel() for p in model.parameters())


def import_official(path: str) -> Dict[str, type]:
    """The official network classes, imported from a checkout with a stub ARCH_REGISTRY."""
    import importlib
    if not osp.isdir(osp.join(path, 'hi_diff', 'archs')):
        raise FileNotFoundError(f'{path} does not look like an HI-Diff checkout '
                                '(no hi_diff/archs)')

    class _Registry:

        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    stubs = {'basicsr': None, 'basicsr.utils': None, 'basicsr.utils.registry': None}
    for name in stubs:
        stubs[name] = sys.modules.setdefault(name, types.ModuleType(name))
    stubs['basicsr.utils.registry'].ARCH_REGISTRY = _Registry()
    # hi_diff/__init__.py and hi_diff/archs/__init__.py auto-import everything (and need the
    # real basicsr): give Python bare packages that only know where their files are.
    for name in ('hi_diff', 'hi_diff.archs'):
        package = types.ModuleType(name)
        package.__path__ = [osp.join(path, *name.split('.'))]
        sys.modules[name] = package
    return dict(
        Transformer=importlib.import_module('hi_diff.archs.Transformer_arch').Transformer,
        latent_encoder_gelu=importlib.import_module(
            'hi_diff.archs.latent_encoder_arch').latent_encoder_gelu,
        denoising=importlib.import_module('hi_diff.archs.denoising_arch').denoising)


def build_official(path: str) -> Tuple[Callable, int]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    classes = import_official(path)
    cfg = OFFICIAL_GOPRO
    net_g = classes['Transformer'](**cfg['net_g']).eval()
    net_le_dm = classes['latent_encoder_gelu'](**cfg['net_le_dm']).eval()
    net_d = classes['denoising'](**cfg['net_d']).eval()
    params = sum(p.numel() for m in (net_g, net_le_dm, net_d) for p in m.parameters())

    # HI_Diff_S2.set_new_noise_schedule / p_sample_loop / test(), GoPro settings.
    betas = np.linspace(cfg['linear_start'], cfg['linear_end'], cfg['timesteps'],
                        dtype=np.float64)
    alphas = 1. - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1., abar[:-1])

    def f32(a):
        return torch.tensor(a, dtype=torch.float32)

    recip, recipm1 = f32(np.sqrt(1. / abar)), f32(np.sqrt(1. / abar - 1))
    coef1 = f32(betas * np.sqrt(abar_prev) / (1. - abar))
    coef2 = f32((1. - abar_prev) * np.sqrt(alphas) / (1. - abar))
    generator = torch.Generator().manual_seed(0)

    def predict(lq):
        h, w = lq.shape[-2:]
        img = F.pad(lq, (0, (-w) % 8, 0, (-h) % 8), 'reflect') if h % 8 or w % 8 else lq
        prior_c = net_le_dm(img)
        x = torch.randn(prior_c.shape, generator=generator)
        for t in reversed(range(cfg['timesteps'])):
            noise = net_d(x, prior_c, torch.full(x.shape, t + 1, dtype=torch.long))
            x_recon = (recip[t] * x - recipm1[t] * noise).clamp_(-1., 1.)
            x = coef1[t] * x_recon + coef2[t] * x
        return net_g(img, x)[..., :h, :w]

    return predict, params


# --------------------------------------------------------------------------------- worker
def run_case(model: str, size: Tuple[int, int], repeats: int, threads: int,
             official: Optional[str]) -> Dict:
    """Time one model at one size in this process (call it in a fresh one)."""
    warnings.filterwarnings('ignore')
    sys.path.insert(0, REPO)
    import importlib

    import torch
    importlib.import_module('hidiff_mm')  # compat layer first; registers the HI-Diff modules
    from mmagic.utils import register_all_modules
    register_all_modules()

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    label = f'{model} {size[1]}x{size[0]}'
    if model == 'hidiff':
        forward, params = build_hidiff()
    elif model == 'restormer':
        forward, params = build_restormer()
    elif model == 'official':
        forward, params = build_official(official)
    else:
        raise ValueError(f'unknown model {model!r}')
    rss_model = current_rss()
    x = torch.rand(1, 3, *size)
    times, cpu_times = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            out = forward(x)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            assert out.shape == x.shape, (out.shape, x.shape)
            del out
            what = 'warm-up' if i == 0 else f'run {i}/{repeats}'
            print(f'  [{label}] {what}: {elapsed:.2f} s wall, {cpu:.2f} s CPU',
                  file=sys.stderr, flush=True)
            if i:
                times.append(elapsed)
                cpu_times.append(cpu)
    peak = peak_rss()
    return dict(model=model, height=size[0], width=size[1], params=params, threads=threads,
                times_s=times, median_s=statistics.median(times), cpu_times_s=cpu_times,
                median_cpu_s=statistics.median(cpu_times), rss_model_bytes=rss_model,
                peak_rss_bytes=peak, peak_minus_model_bytes=peak - rss_model)


# --------------------------------------------------------------------------------- driver
def run_in_subprocess(model: str, size: Tuple[int, int], args) -> Dict:
    cmd = [sys.executable, osp.abspath(__file__), '--worker', model, '--sizes',
           f'{size[1]}x{size[0]}', '--repeats', str(args.repeats), '--threads',
           str(args.threads)]
    if args.official:
        cmd += ['--official', args.official]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'{model} at {size[1]}x{size[0]} failed (exit {proc.returncode})')
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    return json.loads(lines[-1][len(RESULT_TAG):])


def gib(n: float) -> str:
    return f'{n / 2**30:.2f} GiB'


def format_tables(results: List[Dict], meta: Dict) -> str:
    """Markdown: one row per case, then the HI-Diff/Restormer (and ours/official) ratios."""
    out = [f"CPU, {meta['threads']} thread(s), torch {meta['torch']}, fp32, batch 1, "
           f"median of {meta['repeats']} after 1 warm-up; {meta['cpu']}", '',
           '| input (WxH) | model | params | wall time (median) | CPU time (median) '
           '| peak RSS - RSS after build | peak RSS |',
           '|---|---|---|---|---|---|---|']
    for r in results:
        out.append(f"| {r['width']}x{r['height']} | {MODEL_NAMES[r['model']]} | "
                   f"{r['params'] / 1e6:.2f} M | {r['median_s']:.2f} s | "
                   f"{r['median_cpu_s']:.2f} s | {gib(r['peak_minus_model_bytes'])} | "
                   f"{gib(r['peak_rss_bytes'])} |")
    by_case = {(r['width'], r['height'], r['model']): r for r in results}
    sizes = sorted({(r['width'], r['height']) for r in results}, key=lambda s: s[0] * s[1])
    has_official = any(r['model'] == 'official' for r in results)
    keys = ('median_s', 'median_cpu_s', 'peak_minus_model_bytes')
    head = ('| input (WxH) | HI-Diff / Restormer: wall time | CPU time | memory |')
    rule = '|---|---|---|---|'
    if has_official:
        head += ' ours / official: wall time | CPU time | memory |'
        rule += '---|---|---|'
    out += ['', head, rule]

    def ratio(a, b, key):
        return f'{a[key] / b[key]:.2f}' if a and b and b[key] > 0 else 'n/a'

    for w, h in sizes:
        ours = by_case.get((w, h, 'hidiff'))
        rest = by_case.get((w, h, 'restormer'))
        row = f'| {w}x{h} | ' + ' | '.join(ratio(ours, rest, k) for k in keys) + ' |'
        if has_official:
            off = by_case.get((w, h, 'official'))
            row += ' ' + ' | '.join(ratio(ours, off, k) for k in keys) + ' |'
        out.append(row)
    out += ['', 'memory = peak RSS minus the RSS right after model construction '
            '(activations and workspace of the forward pass); CPU time = process time of all '
            'threads (less sensitive than wall time to other load on the machine).']
    return '\n'.join(out)


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CPU inference time and peak memory: HI-Diff vs. Restormer')
    parser.add_argument('--sizes', nargs='+', type=parse_size,
                        default=[parse_size('256x256'), parse_size('1280x720')],
                        help='input sizes WxH (default 256x256 1280x720)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed forwards per case, after 1 warm-up (default 3)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    parser.add_argument('--official', default=None,
                        help='local checkout of the official HI-Diff repository: also time it')
    parser.add_argument('--models', nargs='+', choices=['hidiff', 'restormer', 'official'],
                        default=None, help='subset of models (default: all available)')
    parser.add_argument('--json', default=None, help='also write the raw results here')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error('--repeats must be >= 1')
    if args.official is not None:
        args.official = osp.abspath(args.official)
    return args


def main(argv=None) -> List[Dict]:
    args = parse_args(argv)
    if args.worker:
        result = run_case(args.worker, args.sizes[0], args.repeats, args.threads, args.official)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return [result]

    models = args.models or ['hidiff', 'restormer'] + (['official'] if args.official else [])
    if 'official' in models and not args.official:
        raise SystemExit('--models official needs --official PATH')
    results = []
    for size in args.sizes:
        for model in models:
            print(f'{MODEL_NAMES[model]} at {size[1]}x{size[0]} (fresh process) ...',
                  file=sys.stderr, flush=True)
            results.append(run_in_subprocess(model, size, args))
            r = results[-1]
            print(f"  -> median {r['median_s']:.2f} s, peak RSS {gib(r['peak_rss_bytes'])} "
                  f"(+{gib(r['peak_minus_model_bytes'])} over the built model)",
                  file=sys.stderr, flush=True)
    import torch
    meta = dict(threads=args.threads, repeats=args.repeats, torch=torch.__version__,
                cpu=f'{cpu_name()}, {os.cpu_count()} logical CPU(s)')
    print(format_tables(results, meta))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
