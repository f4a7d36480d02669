"""Helpers shared by ``bench_inference.py`` and ``bench_train_step.py``.

* Fresh-process workers: every case runs in a subprocess of the calling script, which prints
  one ``BENCH_RESULT {json}`` line; :func:`run_worker` starts it and parses that line.
* Memory: resident set size now, its peak, and a reset of the peak (Linux) so that a worker's
  peak covers the measured work only, not the transient copies of loading the weights.
* The official networks: imported at run time from a local checkout of
  github.com/zhengchen1999/HI-Diff through a stub ``basicsr.utils.registry.ARCH_REGISTRY``
  (nothing of that checkout is copied here), built with the GoPro options and loaded from an
  ``HIDiff`` editor state dict (hidiff_mm keeps the official key names under the prefixes of
  ``hidiff_mm.models.official.EDITOR_PREFIX``).
"""
import argparse
import importlib
import json
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import types
import warnings
from typing import Dict, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULT_TAG = 'BENCH_RESULT '

# The GoPro networks of the official release (options/train/GoPro_S{1,2}.yml, test/GoPro.yml).
OFFICIAL_GOPRO = dict(
    net_g=dict(inp_channels=3, out_channels=3, dim=48, num_blocks=[3, 5, 6, 6],
               num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66,
               bias=False, LayerNorm_type='WithBias', dual_pixel_task=False, embed_dim=64,
               group=4),
    net_le=dict(in_chans=6, embed_dim=64, block_num=6, group=4, stage=1, patch_expansion=0.5,
                channel_expansion=4),
    net_le_dm=dict(in_chans=3, embed_dim=64, block_num=6, group=4, stage=2, patch_expansion=0.5,
                   channel_expansion=4),
    net_d=dict(in_channel=256, out_channel=256, inner_channel=512, block_num=4, group=4,
               patch_expansion=0.5, channel_expansion=2))
OFFICIAL_SCHEDULE = dict(timesteps=8, linear_start=0.1, linear_end=0.99)
OFFICIAL_CLASSES = dict(net_g='Transformer', net_le='latent_encoder_gelu',
                        net_le_dm='latent_encoder_gelu', net_d='denoising')


# ------------------------------------------------------------------------------ process
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
    """Peak resident set size of this process (since the last :func:`reset_peak_rss`)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0: ``5 > /proc/self/clear_refs``).

    Returns False where that is not possible; the peak then covers the whole process life.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def worker_setup(threads: int) -> None:
    """Import ``hidiff_mm`` (the compat layer, then MMagic) and fix the torch thread count.

    The worker keeps its freed memory as the tools do (``hidiff_mm.utils.cli.keep_freed_memory``),
    whichever model it runs; ``HIDIFF_MALLOC=default`` in the environment measures glibc's
    default allocator instead.
    """
    warnings.filterwarnings('ignore')
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import torch
    importlib.import_module('hidiff_mm')  # compat layer first; registers the HI-Diff modules
    importlib.import_module('hidiff_mm.utils.cli').keep_freed_memory()
    from mmagic.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(threads)


def run_worker(script: str, args: List[str], threads: int,
               extra_env: Optional[Dict[str, str]] = None) -> Dict:
    """Run ``script --worker ...`` in a fresh process; its ``BENCH_RESULT`` line as a dict."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               **(extra_env or {}))
    proc = subprocess.run([sys.executable, script] + args, stdout=subprocess.PIPE, text=True,
                          env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode or not lines:
        raise RuntimeError(f'worker {" ".join(args)} failed (exit {proc.returncode})')
    return json.loads(lines[-1][len(RESULT_TAG):])


def emit(result: Dict) -> None:
    """Hand a worker's result to the parent process."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(malloc: str) -> str:
    """The CPU, the torch kernels asked for (``ATEN_CPU_CAPABILITY``) and the allocator setting."""
    kernels = os.environ.get('ATEN_CPU_CAPABILITY', 'the best the CPU has')
    return (f'{cpu_name()}, {os.cpu_count()} logical CPU(s); ATEN_CPU_CAPABILITY: {kernels}; '
            f'allocator: {MALLOC_CHOICES[malloc]}')


# --malloc: which allocator setting each worker runs with (hidiff_mm.utils.cli.keep_freed_memory)
MALLOC_CHOICES = {
    'as-shipped': "ours keep freed memory (hidiff_mm's tools do), the official code runs "
                  "with glibc's default (as its own scripts do)",
    'keep': 'every model keeps freed memory (M_MMAP_MAX=0)',
    'default': "every model runs with glibc's default allocator",
}


def add_malloc_option(parser) -> None:
    parser.add_argument('--malloc', choices=list(MALLOC_CHOICES), default='as-shipped',
                        help='allocator setting of the workers: ' + '; '.join(
                            f'{k}: {v}' for k, v in MALLOC_CHOICES.items()))


def malloc_env(malloc: str, model: str) -> Dict[str, str]:
    """The environment that gives ``model``'s worker the ``--malloc`` setting."""
    keep = malloc == 'keep' or (malloc == 'as-shipped' and model != 'official')
    return dict(HIDIFF_MALLOC='keep' if keep else 'default')


# ------------------------------------------------------------------------------ tables
def gib(n: float) -> str:
    return f'{n / 2**30:.2f} GiB'


def ratio(a: Optional[Dict], b: Optional[Dict], key: str) -> str:
    return f'{a[key] / b[key]:.2f}' if a and b and b.get(key, 0) > 0 else 'n/a'


RATIO_KEYS = ('median_s', 'median_cpu_s', 'peak_minus_model_bytes')


def reference_model(models: List[str]) -> Optional[str]:
    """What the others are compared with: the official networks if run, else our exact path."""
    return next((m for m in ('official', 'exact') if m in models), None)


def ratio_pairs(models: List[str], reference: Optional[str]) -> List[Tuple[str, str]]:
    """``(ours, reference)`` pairs for the ratio table: fast, bf16 and exact against the
    reference."""
    return [(m, reference) for m in ('fast', 'bf16', 'exact')
            if reference and m in models and m != reference]


def ratio_table(label: str, rows: List[Tuple[str, Dict[str, Dict]]],
                pairs: List[Tuple[str, str]]) -> List[str]:
    """Markdown lines: per row ``(name, {model: result})``, the wall time, CPU time and memory
    ratios ``a / b`` of every model pair."""
    lines = [f'| {label} | ' + ' | '.join(f'{a} / {b}: wall time | CPU time | memory'
                                          for a, b in pairs) + ' |',
             '|---|' + '---|---|---|' * len(pairs)]
    for name, by_model in rows:
        cells = [ratio(by_model.get(a), by_model.get(b), k) for a, b in pairs for k in RATIO_KEYS]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return lines


def sci(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.2e}'


def max_abs_diff(a, b) -> float:
    """max |a - b| over all elements (inf when the shapes differ)."""
    if a.shape != b.shape:
        return float('inf')
    return (a.double() - b.double()).abs().max().item()


# ------------------------------------------------------------------------------ official
def import_official(path: str) -> Dict[str, type]:
    """The official network classes, imported from a checkout with a stub ARCH_REGISTRY."""
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


def build_official(path: str, roles: List[str], editor_state: Dict) -> Dict:
    """role -> official GoPro network (train mode), loaded strictly from an HIDiff state dict."""
    from hidiff_mm.models.official import EDITOR_PREFIX
    classes = import_official(path)
    nets = {}
    for role in roles:
        net = classes[OFFICIAL_CLASSES[role]](**OFFICIAL_GOPRO[role])
        prefix = EDITOR_PREFIX[role]
        net.load_state_dict({k[len(prefix):]: v for k, v in editor_state.items()
                             if k.startswith(prefix)}, strict=True)
        nets[role] = net
    return nets


def official_schedule() -> Dict:
    """The float32 buffers of ``HI_Diff_S2.set_new_noise_schedule`` that the GoPro chain uses
    (``make_beta_schedule('linear')`` is a float64 ``np.linspace``)."""
    import numpy as np
    import torch
    cfg = OFFICIAL_SCHEDULE
    betas = np.linspace(cfg['linear_start'], cfg['linear_end'], cfg['timesteps'],
                        dtype=np.float64)
    alphas = 1. - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1., abar[:-1])

    def f32(a):
        return torch.tensor(a, dtype=torch.float32)

    return dict(timesteps=cfg['timesteps'], alphas_cumprod=f32(abar),
                sqrt_recip=f32(np.sqrt(1. / abar)), sqrt_recipm1=f32(np.sqrt(1. / abar - 1)),
                coef1=f32(betas * np.sqrt(abar_prev) / (1. - abar)),
                coef2=f32((1. - abar_prev) * np.sqrt(alphas) / (1. - abar)))


def official_chain(net_d, schedule: Dict, x, cond):
    """``HI_Diff_S2.p_sample_loop(_wo_variance)``: T posterior-mean steps from ``x``, clamped
    x0 estimates, the denoiser called with the 1-based step as a full tensor."""
    import torch
    for t in reversed(range(schedule['timesteps'])):
        noise = net_d(x, cond, torch.full(x.shape, t + 1, dtype=torch.long, device=x.device))
        x_recon = schedule['sqrt_recip'][t] * x - schedule['sqrt_recipm1'][t] * noise
        x_recon.clamp_(-1., 1.)
        x = schedule['coef1'][t] * x_recon + schedule['coef2'][t] * x
    return x
