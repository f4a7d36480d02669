"""The one helper module of the benchmarks (each ``bench_*.py`` / ``gpu_*.py`` is one job).

* Fresh-process workers: every case runs in a subprocess of the calling script, which prints
  one ``BENCH_RESULT {json}`` line; :func:`run_worker` starts it and parses that line.
* Memory: resident set size now, its peak, and a reset of the peak (Linux) so that a worker's
  peak covers the measured work only, not the transient copies of loading the weights.
* The official networks: imported at run time from a local checkout of
  github.com/zhengchen1999/HI-Diff through a stub ``basicsr.utils.registry.ARCH_REGISTRY``
  (nothing of that checkout is copied here), built with the GoPro options and loaded from an
  ``HIDiff`` editor state dict (hidiff_mm keeps the official key names under the prefixes of
  ``hidiff_mm.models.official.EDITOR_PREFIX``); their whole prediction
  (:func:`build_official_predict`) and training step (:func:`build_official_step`).
* The GPU check (``gpu_*.py``, run by ``gpu_check.sh``): the shared command line
  (:func:`gpu_parser`), the device, a time budget (:class:`Clock`), guarded cases, timing with
  CUDA synchronisation and peak memory, the model, and the frame of each program
  (:func:`run_part`) that writes its part's JSON, which ``gpu_report.py`` joins into one report.
"""
import argparse
import contextlib
import importlib
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
import types
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULT_TAG = 'BENCH_RESULT '

CONFIGS = osp.join(REPO, 'configs')
FP32_CONFIG = osp.join(CONFIGS, 'hidiff_gopro.py')
BF16_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp.py')
FP16_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp_fp16.py')
OFFICIAL_OPTIM = dict(lr=2e-4, weight_decay=1e-4, betas=(0.9, 0.999))
OFFICIAL_CLIP = 0.01
TINY_MODEL = dict(
    generator=dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(
        encoder_s1=dict(embed_dim=4, num_blocks=1),
        encoder_s2=dict(embed_dim=4, num_blocks=1),
        denoiser=dict(prior_channels=16, inner_channels=16)))

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


def make_pairs(batch: int, patch: int):
    """(blurry, sharp) uint8 batches, the same in every worker."""
    import torch
    gen = torch.Generator().manual_seed(1)
    shape = (batch, 3, patch, patch)
    return (torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen),
            torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen))


def build_official_predict(path: str, weights: str, device: str = 'cpu') -> Tuple[Callable, int]:
    """The official prediction (``HI_Diff_S2.test``) on ``device``; its noise is drawn there."""
    import torch
    import torch.nn.functional as F
    nets = build_official(path, ['net_g', 'net_le_dm', 'net_d'],
                          torch.load(weights, weights_only=True))
    net_g, net_le_dm, net_d = (nets[k].to(device).eval() for k in ('net_g', 'net_le_dm', 'net_d'))
    params = sum(p.numel() for m in nets.values() for p in m.parameters())
    schedule = official_schedule()
    generator = torch.Generator(device)

    def predict(lq):
        # HI_Diff_S2.test(): reflect pad to 8, LE_DM, posterior-mean chain from noise, net_g.
        h, w = lq.shape[-2:]
        img = F.pad(lq, (0, (-w) % 8, 0, (-h) % 8), 'reflect') if h % 8 or w % 8 else lq
        prior_c = net_le_dm(img)
        x = torch.randn(prior_c.shape, generator=generator.manual_seed(0), device=device)
        return net_g(img, official_chain(net_d, schedule, x, prior_c))[..., :h, :w]

    return predict, params


def build_official_step(args, stage: int, device: str = 'cpu'
                        ) -> Tuple[Callable[[], float], Any, int]:
    """The official ``optimize_parameters`` of HI_Diff_S1 / HI_Diff_S2 (see the docstring), on
    ``device``."""
    import torch
    import torch.nn.functional as F
    roles = ['net_g', 'net_le'] + (['net_le_dm', 'net_d'] if stage == 2 else [])
    nets = build_official(args.official, roles, torch.load(args.weights, weights_only=True))
    for net in nets.values():
        net.to(device).train()
    trained_nets = [nets[k] for k in (('net_g', 'net_le') if stage == 1 else
                                      ('net_g', 'net_le_dm', 'net_d'))]
    if stage == 2:
        nets['net_le'].requires_grad_(False)  # "freeze c1 (cpen_s1)"
    params = [p for net in trained_nets for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, **OFFICIAL_OPTIM)
    schedule = official_schedule()
    abar_T = schedule['alphas_cumprod'][schedule['timesteps'] - 1]
    blur, sharp = (t.to(device) for t in make_pairs(args.batch, args.patch))
    net_g, net_le = nets['net_g'], nets['net_le']

    def step() -> float:
        lq, gt = blur.float() / 255., sharp.float() / 255.
        optimizer.zero_grad()
        if stage == 1:
            prior = net_le(lq, gt)
            l_total = F.l1_loss(net_g(lq, prior), gt)
        else:
            prior_z = net_le(lq, gt)
            prior_d = nets['net_le_dm'](lq)
            noise = torch.randn_like(prior_z)
            prior_noisy = abar_T * prior_z + (1 - abar_T**2).sqrt() * noise  # q_sample
            prior = official_chain(nets['net_d'], schedule, prior_noisy, prior_d)
            l_total = F.l1_loss(net_g(lq, prior), gt) + F.l1_loss(prior_z, prior)
        l_total.backward()
        torch.nn.utils.clip_grad_norm_(params, OFFICIAL_CLIP)
        optimizer.step()
        return float(l_total)

    return step, net_g.output.weight, sum(p.numel() for p in params)


# ------------------------------------------------------------------------------ GPU check
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gpu_parser(description: str) -> argparse.ArgumentParser:
    """The command line every ``gpu_*.py`` program takes (``gpu_check.sh`` passes the same
    options to each; a program uses the ones of its job)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--cpu', action='store_true', help='run on CPU (CUDA parts replaced)')
    parser.add_argument('--tiny', action='store_true', help='tiny model and sizes')
    parser.add_argument('--out', default=os.environ.get('OUT') or './gpu_out')
    parser.add_argument('--budget', type=float, default=120,
                        help='seconds for this program; later cases are skipped past it')
    parser.add_argument('--official', help='checkout of the official HI-Diff code')
    parser.add_argument('--sizes', nargs='+', help='WxH (default 256x256 1280x720)')
    parser.add_argument('--compile-sizes', nargs='+', help='WxH (default 256x256 1280x720)')
    parser.add_argument('--compile-mode', default='default', help='torch.compile mode')
    parser.add_argument('--compile-min-s', type=float, default=45,
                        help='start a compile case only with this many seconds of budget left')
    parser.add_argument('--repeats', type=int, help='timed runs per case (default 5)')
    parser.add_argument('--batch', type=int, help='training batch (default 8)')
    parser.add_argument('--patch', type=int, help='training patch side (default 128)')
    parser.add_argument('--train-steps', type=int, help='timed steps per case (default 5)')
    parser.add_argument('--with-cp', action='store_true',
                        help='training steps with activation checkpointing of the Transformer')
    parser.add_argument('--ddp-iters', type=int, default=8)
    parser.add_argument('--ddp-switch', type=int, default=4)
    return parser


def gpu_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and fill the size defaults (smaller with ``--tiny``)."""
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(sizes=['32x32', '48x24'] if tiny else ['256x256', '1280x720'],
                    compile_sizes=['32x32'] if tiny else ['256x256', '1280x720'],
                    repeats=2 if tiny else 5, batch=2 if tiny else 8,
                    patch=32 if tiny else 128, train_steps=2 if tiny else 5)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    os.makedirs(args.out, exist_ok=True)
    return args


def gpu_device(args):
    """The first CUDA device, or the CPU (``--cpu``, or no CUDA here); MMagic's scope set."""
    import torch

    import hidiff_mm  # noqa: F401  # isort: skip  (compat before mmagic; registers HI-Diff)
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    if args.cpu:
        return torch.device('cpu')
    if torch.cuda.is_available():
        device = torch.device('cuda', 0)
        torch.cuda.set_device(device)
        return device
    log('No CUDA device: running on CPU (pass --cpu to say so)')
    return torch.device('cpu')


class Clock:
    """Seconds since start, and part deadlines within the total budget."""

    def __init__(self, budget: float) -> None:
        self.t0 = time.time()
        self.budget = budget

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self, until: Optional[float] = None) -> float:
        end = self.budget if until is None else min(until, self.budget)
        return end - self.elapsed()


def guarded(results: List[Dict], row: Dict, fn: Callable[[], Dict]) -> Dict:
    """Run one case; on any error record it (with the traceback in the log) and go on."""
    import torch
    try:
        row.update(fn())
        row.setdefault('status', 'ok')
    except Exception as exc:  # noqa: BLE001  (every failure is reported, none stops the run)
        oom = 'out of memory' in str(exc).lower()
        row['status'] = 'OOM' if oom else f'error: {type(exc).__name__}: {str(exc)[:200]}'
        log(f'[{row.get("part")}] case {row} failed:\n{traceback.format_exc()}')
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    results.append(row)
    log(f'[{row.get("part")}] {fmt_row(row)}')
    return row


def fmt_row(row: Dict) -> str:
    return ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                     for k, v in row.items())


def sync(device) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> Optional[float]:
    import torch
    if device.type != 'cuda':
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def autocast(device, dtype: str):
    import torch
    if dtype == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dict(bf16=torch.bfloat16, fp16=torch.float16)[dtype])


def timed(fn: Callable, device, repeats: int, warmup: int = 1):
    """Median seconds of ``repeats`` calls after ``warmup`` calls; returns (median, last out)."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def environment(device, args) -> Dict:
    import numpy as np
    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__,
                numpy=np.__version__, device=str(device), cuda=torch.version.cuda,
                tiny=args.tiny)
    for name in ('mmengine', 'mmcv', 'mmagic', 'torchvision', 'cv2'):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001
            info[name] = f'unavailable ({type(exc).__name__})'
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / 2**30, 1),
                    capability='.'.join(map(str, torch.cuda.get_device_capability(device))),
                    bf16_supported=torch.cuda.is_bf16_supported(),
                    cudnn=torch.backends.cudnn.version(),
                    matmul_tf32=torch.backends.cuda.matmul.allow_tf32,
                    cudnn_tf32=torch.backends.cudnn.allow_tf32)
    else:
        info['threads'] = torch.get_num_threads()
    return info


def build_model(tiny: bool, device):
    """The GoPro HIDiff editor (random weights, seed 0), or its tiny version, on ``device`` in
    its exact form (each case converts it explicitly with :func:`set_form`)."""
    import torch
    from mmagic.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(BF16_CONFIG)
    if tiny:
        cfg.merge_from_dict(dict(model=TINY_MODEL))
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device).eval()


def set_form(model, fast: bool) -> None:
    """Convert ``model`` to its fast or its exact form, on whatever device it is."""
    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    (convert_to_fast if fast else convert_to_exact)(model)


@contextlib.contextmanager
def amp_on_cpu(device):
    """AmpOptimWrapper refuses to build without CUDA; on CPU lift that check (bf16 autocast)."""
    if device.type == 'cuda':
        yield
        return
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
    original = amp.is_cuda_available
    amp.is_cuda_available = lambda: True
    try:
        yield
    finally:
        amp.is_cuda_available = original


def table(rows: List[Dict], columns: List[str]) -> str:
    def cell(v):
        if v is None:
            return '–'
        if isinstance(v, float) and v == 0:
            return '0'
        if isinstance(v, float):
            return f'{v:.3g}' if abs(v) < 1e-2 and v != 0 else f'{v:.2f}'
        return str(v)
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(r.get(c)) for c in columns) + ' |' for r in rows]
    return '\n'.join(lines)


class PartRows(list):
    """The result rows of one part; every row appended is written to ``OUT/gpu_<part>.json`` at
    once (``complete: false`` until :meth:`finish`), so a killed run keeps what it has."""

    def __init__(self, args, part: str, env: Dict, clock: 'Clock') -> None:
        super().__init__()
        self.path = osp.join(args.out, f'gpu_{part}.json')
        self.part, self.env, self.clock = part, env, clock

    def append(self, row: Dict) -> None:
        super().append(row)
        self._write(complete=False)

    def finish(self) -> str:
        """Write the part as complete; returns the file's path."""
        self._write(complete=True)
        return self.path

    def _write(self, complete: bool) -> None:
        with open(self.path + '.tmp', 'w') as f:
            json.dump(dict(part=self.part, environment=self.env, results=list(self),
                           total_s=self.clock.elapsed(), complete=complete), f, indent=1,
                      default=str)
        os.replace(self.path + '.tmp', self.path)


def run_part(part: str, args: argparse.Namespace,
             job: Callable[[Any, 'Clock', List[Dict]], None]) -> List[Dict]:
    """The frame of every ``gpu_*.py`` program: start the clock, pick the device (MMagic's scope
    set), log the environment, run ``job(device, clock, rows)`` (it appends one row per case,
    through :func:`guarded`) and write ``OUT/gpu_<part>.json``. Returns the rows."""
    clock = Clock(args.budget)
    device = gpu_device(args)
    env = environment(device, args)
    log('environment: ' + str(env))
    rows = PartRows(args, part, env, clock)
    job(device, clock, rows)
    log(f'wrote {rows.finish()} ({clock.elapsed():.0f} s)')
    return list(rows)
