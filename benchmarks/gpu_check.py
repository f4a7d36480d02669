"""GPU check of HI-Diff: speed, memory and precision on one GPU, and a DDP (nccl) training run.

Usage (``benchmarks/gpu_check.sh`` installs the packages and runs this on a GPU machine)::

    python benchmarks/gpu_check.py [--out DIR] [--budget 320] [--parts a b c d e] \
        [--official PATH]
    python benchmarks/gpu_check.py --cpu --tiny          # CPU smoke run of every part
    python benchmarks/gpu_check.py --write-stubs DIR     # only write the import stand-ins

Parts (each case is guarded: a failure prints its traceback and the run goes on):

* (a) inference, eager: the Transformer alone (``model.generator(img, prior)`` with a fixed
  prior) and the whole blind prediction (``model.forward_tensor``: prior sampled from a seeded
  ``z_T``, reflect padding, Transformer) of the GoPro model (random weights, seed 0) at
  ``--sizes`` (default 256x256 and 1280x720, given as WxH), fp32 vs bf16 autocast, fast vs
  exact form (``hidiff_mm.models.layers.convert_to_fast`` / ``convert_to_exact``: the fast
  form really runs on the GPU, although by default a model moved to CUDA takes the exact one),
  under ``torch.no_grad``. Median of
  ``--repeats`` runs after one warm-up (``torch.cuda.synchronize`` around each), peak GPU memory
  (``torch.cuda.max_memory_allocated``, weights included) and the max abs difference of the
  output from the fp32 exact-path output.
* (b) training step per stage (S1, S2): ``model.train_step(data, optim_wrapper)`` on
  ``--batch`` random pairs of ``--patch`` px, with the optimizer wrapper of
  ``configs/hidiff_gopro.py`` (fp32), ``configs/hidiff/hidiff_gopro_amp.py`` (bf16
  AmpOptimWrapper) and ``configs/hidiff/hidiff_gopro_amp_fp16.py`` (fp16, dynamic loss
  scaling), fast vs exact path; the same initial weights and noise for every case; median of
  ``--train-steps`` steps after two warm-up steps; the first step's loss against fp32 exact.
  ``--with-cp`` turns on the Transformer's activation checkpointing (``generator.with_cp``);
  ``--batch 1 --patch 384`` is one micro-batch of the recipe's 384^2 phase.
* (c) DDP: ``torchrun --nproc_per_node 1 tools/train.py CFG --launcher pytorch`` (nccl) on a
  tiny set of blurred/sharp PNG pairs (8 train, 2 val, 64 px), CFG being
  ``configs/hidiff/hidiff_gopro_amp_ema.py`` (bf16 AMP + EMA) with the data, the sizes and the
  iterations shrunk, the stage switch moved to iteration ``--ddp-switch`` and a total batch
  of 4 pairs made of 2 accumulated micro-batches of 2 (DDP ``no_sync``); checks the
  checkpoints (stage 1 then 2, EMA state, AMP loss-scaler state); the run's output goes to
  ``OUT/ddp_train.log``.
* (e) the official code side by side (``--official PATH``, a checkout of
  github.com/zhengchen1999/HI-Diff read at run time and never copied; ``.official/`` is
  git-ignored for it): its fp32 whole prediction at ``--sizes`` and its stage-1 / stage-2
  training steps (``optimize_parameters``) on the batch of (b), with the model's weights; the
  report then divides every (a) prediction and (b) step by the official time and peak memory.
  It runs after (b), before (c).
* (d) ``torch.compile`` of the Transformer (``--compile-mode``, default ``default``; the whole
  model then runs it too), the cases of (a) at ``--compile-sizes``, fast path first. It runs
  last, with whatever is left of ``--budget``; the compile time (first call) is reported apart
  from the median, the cases left over as skipped.

On CPU (``--cpu``) the CUDA-only pieces are replaced or skipped with a message: bf16 runs under
CPU autocast (AmpOptimWrapper's CUDA check is lifted for that), fp16 is skipped, DDP uses gloo
and a plain OptimWrapper. Results: Markdown tables on stdout and in ``OUT/gpu_check.md``, JSON
in ``OUT/gpu_check.json`` (``OUT`` = ``--out``, else ``$OUT``, else ``./gpu_out``).
"""
import argparse
import contextlib
import copy
import glob
import importlib.util
import json
import os
import os.path as osp
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
FP32_CONFIG = osp.join(CONFIGS, 'hidiff_gopro.py')
BF16_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp.py')
FP16_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp_fp16.py')
DDP_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp_ema.py')
TINY_MODEL = dict(
    generator=dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(
        encoder_s1=dict(embed_dim=4, num_blocks=1),
        encoder_s2=dict(embed_dim=4, num_blocks=1),
        denoiser=dict(prior_channels=16, inner_channels=16)))

# Modules that MMagic 1.2.0 imports at module level for models and metrics HI-Diff does not use
# (scipy: FID/IS/NIQE/MS-SSIM metrics and blur kernels; pandas: Disco Diffusion; albumentations:
# its albu transforms). Where the machine lacks them, --write-stubs writes import stand-ins.
STUBS = ('scipy', 'pandas', 'albumentations')
STUB_SOURCE = '''"""Import stand-in for {name!r}, written by benchmarks/gpu_check.py --write-stubs.

{name} is not installed here; MMagic imports it at module level for models and metrics that
HI-Diff does not use. Every attribute and submodule imports; using one raises RuntimeError.
"""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = '0.0.0+stub'
STUB = True


class _Missing:
    """Placeholder for any attribute: usable as a base class, raises when called."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f'{{type(self).__name__}} comes from an import stand-in: '
                           f'{name} is not installed')

    def __class_getitem__(cls, item):
        return cls


def _placeholder(qualname):
    return type(qualname.rsplit('.', 1)[-1], (_Missing,), {{'__module__': qualname}})


def _module_getattr(module_name):
    def __getattr__(attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        return _placeholder(f'{{module_name}}.{{attr}}')
    return __getattr__


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith({name!r} + '.'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _module_getattr(spec.name)
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
__getattr__ = _module_getattr({name!r})
'''


# ------------------------------------------------------------------------------ small helpers
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_stubs(folder: str) -> List[str]:
    """Write a stand-in package for each module of STUBS that does not import here."""
    written = []
    for name in STUBS:
        if importlib.util.find_spec(name) is not None:
            continue
        os.makedirs(osp.join(folder, name), exist_ok=True)
        with open(osp.join(folder, name, '__init__.py'), 'w') as f:
            f.write(STUB_SOURCE.format(name=name))
        written.append(name)
    return written


def parse_size(text: str):
    """'WxH' -> (H, W)."""
    w, h = (int(v) for v in text.lower().split('x'))
    return h, w


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


# ------------------------------------------------------------------------------ environment
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
    info['stubs'] = [n for n in STUBS if getattr(sys.modules.get(n), 'STUB', False)]
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
    """The GoPro HIDiff editor (random weights, seed 0), or its tiny version."""
    import torch
    from mmagic.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(BF16_CONFIG)
    if tiny:
        cfg.merge_from_dict(dict(model=TINY_MODEL))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    return model.eval()


def set_form(model, fast: bool) -> None:
    """Convert ``model`` to its fast or its exact form, on whatever device it is."""
    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    (convert_to_fast if fast else convert_to_exact)(model)


def restore_form(model) -> None:
    """Back to the default setting: the fast form on the CPU, the exact one elsewhere."""
    model.generator.configure_fast_path('cpu', model.generator.strip_pixels)


# ------------------------------------------------------------------------------ (a) and (d)
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
    restore_form(model)


# ------------------------------------------------------------------------------ (b)
def optim_cfg(path: str) -> Dict:
    from mmengine.config import Config
    return Config.fromfile(path).optim_wrapper.to_dict()


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


def train_cases(model, device, args, clock: Clock, results: List[Dict], until: float) -> None:
    import torch
    from mmagic.structures import DataSample
    from mmengine.optim import build_optim_wrapper

    wrappers = dict(fp32=optim_cfg(FP32_CONFIG), bf16=optim_cfg(BF16_CONFIG),
                    fp16=optim_cfg(FP16_CONFIG))
    init = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(2)
    size = (3, args.patch, args.patch)
    inputs = [torch.randint(0, 256, size, generator=g).float().to(device)
              for _ in range(args.batch)]
    gts = [torch.randint(0, 256, size, generator=g).float().to(device)
           for _ in range(args.batch)]

    def batch():
        return dict(inputs=list(inputs), data_samples=[DataSample(gt_img=t) for t in gts])

    refs = {}
    for stage in (1, 2):
        for dtype in ('fp32', 'bf16', 'fp16'):
            for fast in (False, True):
                row = dict(part='b', stage=stage, dtype=dtype, path='fast' if fast else 'exact',
                           batch=f'{args.batch}x{args.patch}x{args.patch}'
                           + (', with_cp' if args.with_cp else ''))
                if clock.left(until) <= 0:
                    row['status'] = 'skipped (time budget)'
                    results.append(row)
                    continue
                if dtype == 'fp16' and device.type != 'cuda':
                    row['status'] = 'skipped (fp16 autocast needs CUDA)'
                    results.append(row)
                    continue

                def case(stage=stage, dtype=dtype, fast=fast):
                    model.load_state_dict(init)
                    model.set_stage(stage)
                    model.generator.with_cp = args.with_cp
                    model.train()
                    set_form(model, fast)
                    with amp_on_cpu(device):
                        wrapper = build_optim_wrapper(model, copy.deepcopy(wrappers[dtype]))
                    losses = []

                    def step():
                        torch.manual_seed(100 + len(losses))
                        log_vars = model.train_step(batch(), wrapper)
                        losses.append(float(log_vars['loss'].detach()))
                        return log_vars

                    try:
                        step()
                        reset_peak(device)
                        median, _ = timed(step, device, args.train_steps, warmup=1)
                    finally:
                        model.eval()
                    first = losses[0]
                    key = stage
                    if dtype == 'fp32' and not fast:
                        refs[key] = first
                    ref = refs.get(key)
                    out = dict(median_ms=median * 1e3, peak_gib=peak_gib(device),
                               first_loss=first, last_loss=losses[-1],
                               loss_diff=abs(first - ref) if ref is not None else None)
                    if dtype != 'fp32':
                        scaler = wrapper.loss_scaler
                        out['loss_scale'] = scaler.get_scale() if scaler.is_enabled() else 'off'
                    if not all(map(lambda v: v == v and abs(v) != float('inf'), losses)):
                        out['status'] = 'non-finite loss'
                    return out

                guarded(results, row, case)
    model.load_state_dict(init)
    model.set_stage(1)
    restore_form(model)


# ------------------------------------------------------------------------------ (c)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_pairs(root: str, num_train: int = 8, num_val: int = 2, size: int = 64) -> None:
    """Tiny blurred/sharp PNG pairs in the GoPro layout (``tools/make_synthetic_blur.py`` does
    not run under OpenCV 5, whose putText refuses float images)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(1)
    for split, num in (('train', num_train), ('test', num_val)):
        for sub in ('input', 'target'):
            os.makedirs(osp.join(root, split, sub), exist_ok=True)
        for i in range(num):
            coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            sharp = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(osp.join(root, split, 'target', f'{i:06d}.png'), sharp)
            cv2.imwrite(osp.join(root, split, 'input', f'{i:06d}.png'), cv2.blur(sharp, (7, 7)))


def ddp_config(path: str, data: str, work_dir: str, args, device) -> str:
    """The AMP + EMA config with the data, sizes and iterations shrunk (a run of seconds)."""
    from mmengine.config import Config
    cfg = Config.fromfile(DDP_CONFIG)
    iters, switch = args.ddp_iters, args.ddp_switch
    hooks = []
    for hook in cfg.custom_hooks:
        hook = hook.to_dict() if hasattr(hook, 'to_dict') else dict(hook)
        if hook['type'] == 'StageSwitchHook':
            hook['switch_iter'] = switch
        elif hook['type'] == 'ProgressivePatchHook':
            # a total of 4 pairs in micro-batches of 2: 2 accumulated micro-batches per step
            hook.update(milestones=[2, iters], patch_sizes=[32, 48], batch_sizes=[2, 2],
                        start_iter=[0, switch], recipe_total_batch_sizes=[4, 4])
        elif hook['type'] == 'BasicVisualizationHook':
            continue
        hooks.append(hook)
    pipeline = [
        dict(type='LoadImagePair', keys=['img', 'gt'], color_type='color', channel_order='rgb',
             imdecode_backend='cv2'),
        dict(type='SetValues', dictionary=dict(scale=1)),
        dict(type='PairedRandomCrop', gt_patch_size=48),
        dict(type='RandomDihedral', keys=['img', 'gt']),
        dict(type='PackInputs'),
    ]
    override = dict(
        work_dir=work_dir,
        custom_imports=dict(imports=['hidiff_mm'], allow_failed_imports=False),
        custom_hooks=hooks,
        train_cfg=dict(type='AccumulatingIterBasedTrainLoop', max_iters=iters,
                       val_interval=switch, total_batch_size=4),
        param_scheduler=[dict(type='ConstantLR', factor=1.0, begin=0, end=iters,
                              by_epoch=False)],
        train_dataloader=dict(
            batch_size=2, num_workers=2,
            dataset=dict(data_root=f'{data}/train', data_prefix=dict(img='input', gt='target'),
                         pipeline=pipeline)),
        val_dataloader=dict(
            num_workers=1,
            dataset=dict(data_root=f'{data}/test', data_prefix=dict(img='input', gt='target'))),
        default_hooks=dict(checkpoint=dict(interval=switch, max_keep_ckpts=-1, save_best=None),
                           logger=dict(interval=1)),
        visualizer=dict(vis_backends=[dict(type='LocalVisBackend')]),
    )
    cfg.merge_from_dict(override)
    if args.tiny:
        cfg.merge_from_dict(dict(model=TINY_MODEL))
    if device.type != 'cuda':  # AmpOptimWrapper needs CUDA: plain fp32 on CPU (gloo)
        wrapper = cfg.optim_wrapper.to_dict()
        for key in ('dtype', 'loss_scale'):
            wrapper.pop(key, None)
        wrapper['type'] = 'OptimWrapper'
        cfg.optim_wrapper = wrapper
    cfg.dump(path)
    return path


def ddp_case(device, args, clock: Clock, results: List[Dict], until: float) -> None:
    import torch
    row = dict(part='c', run='torchrun --nproc_per_node 1 tools/train.py --launcher pytorch',
               backend='nccl' if device.type == 'cuda' else 'gloo',
               config=osp.relpath(DDP_CONFIG, REPO))
    if clock.left(until) <= 20:
        row['status'] = 'skipped (time budget)'
        results.append(row)
        return

    def case():
        tmp = tempfile.mkdtemp(prefix='hidiff_gpu_check_')
        data, work_dir = osp.join(tmp, 'data'), osp.join(tmp, 'work')
        env = dict(os.environ, OMP_NUM_THREADS='1')
        env['PYTHONPATH'] = os.pathsep.join(p for p in [REPO, env.get('PYTHONPATH', '')] if p)
        write_pairs(data)
        cfg = ddp_config(osp.join(tmp, 'ddp_amp_ema.py'), data, work_dir, args, device)
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '1',
               '--master_port', str(free_port()), osp.join(REPO, 'tools', 'train.py'), cfg,
               '--launcher', 'pytorch']
        t = time.perf_counter()
        timeout = max(30, clock.left(until))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp,
                              timeout=timeout)
        wall = time.perf_counter() - t
        with open(osp.join(args.out, 'ddp_train.log'), 'w') as f:
            f.write(proc.stdout[-200000:] + '\n----- stderr -----\n' + proc.stderr[-200000:])
        if proc.returncode != 0:
            raise RuntimeError(f'train.py exited {proc.returncode}: {proc.stderr[-1500:]}')
        ckpt_path = osp.join(work_dir, f'iter_{args.ddp_iters}.pth')
        ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
        stages = {osp.basename(p): torch.load(p, map_location='cpu', weights_only=True)
                  ['meta'].get('hidiff_stage') for p in glob.glob(osp.join(work_dir, 'iter_*.pth'))}
        raw = {k[len('module.'):]: v for k, v in ckpt.get('ema_state_dict', {}).items()
               if k.startswith('module.')}
        ema_differs = any(not torch.equal(v, ckpt['state_dict'][k]) for k, v in raw.items()
                          if k.startswith('generator.'))
        out = dict(wall_s=wall, stages=stages, final_stage=ckpt['meta'].get('hidiff_stage'),
                   ema_in_ckpt='ema_state_dict' in ckpt, ema_differs_from_raw=ema_differs,
                   loss_scaler_state='loss_scaler' in ckpt.get('optimizer', {}))
        ok = out['final_stage'] == 2 and out['ema_in_ckpt'] and ema_differs
        if device.type == 'cuda':
            ok = ok and out['loss_scaler_state']
        out['status'] = 'finished' if ok else 'finished, but a check failed'
        return out

    guarded(results, row, case)


# ------------------------------------------------------------------------------ (e)
def official_cases(model, device, args, clock: Clock, results: List[Dict], until: float) -> None:
    """Part (e): the official networks side by side, fp32, with the model's weights.

    The whole prediction at ``--sizes`` (``HI_Diff_S2.test``: LE_DM, the 8-step chain from
    seeded noise, net_g) and one training step per stage on ``--batch`` x ``--patch`` pairs
    (``optimize_parameters`` of HI_Diff_S1 / S2), from ``--official`` (a checkout of
    github.com/zhengchen1999/HI-Diff, read at run time). The ratio table of the report divides
    each case of (a) / (b) by the official time.
    """
    import torch
    from bench_inference import build_official_predict
    from bench_train_step import build_official_step

    weights = osp.join(args.out, 'official_side_by_side_weights.pth')
    torch.save(model.state_dict(), weights)
    step_args = argparse.Namespace(official=args.official, weights=weights, batch=args.batch,
                                   patch=args.patch)
    cases = [('hidiff', size, None) for size in args.sizes] + [
        ('train', f'{args.batch}x{args.patch}x{args.patch}', stage) for stage in (1, 2)]
    for which, size, stage in cases:
        row = dict(part='e', model=which, size=size, stage=stage, dtype='fp32', path='official')
        if clock.left(until) <= 0:
            row['status'] = 'skipped (time budget)'
            results.append(row)
            continue

        def case(which=which, size=size, stage=stage):
            if which == 'train':
                step, _, _ = build_official_step(step_args, stage, device.type)

                def run():
                    torch.manual_seed(100)
                    return step()

                reset_peak(device)
                median, _ = timed(run, device, args.train_steps)
                return dict(median_ms=median * 1e3, peak_gib=peak_gib(device))
            predict, _ = build_official_predict(args.official, weights, device.type)
            h, w = parse_size(size)
            img = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
            reset_peak(device)
            with torch.no_grad():
                median, _ = timed(lambda: predict(img), device, args.repeats)
            return dict(median_ms=median * 1e3, peak_gib=peak_gib(device))

        guarded(results, row, case)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    os.remove(weights)


def side_by_side(results: List[Dict]) -> List[Dict]:
    """Each (a) whole-prediction and (b) training case over the official case of its size."""
    official = {(r['model'], r['size'] if r['model'] == 'hidiff' else r['stage']): r
                for r in results if r.get('part') == 'e' and r.get('median_ms')}
    rows = []
    for r in results:
        if r.get('part') == 'a' and r.get('model') == 'hidiff':
            ref = official.get(('hidiff', r['size']))
            case = f"prediction {r['size']}"
        elif r.get('part') == 'b':
            ref = official.get(('train', r['stage']))
            case = f"training step, stage {r['stage']}, {r['batch']}"
        else:
            continue
        if ref is None or not r.get('median_ms'):
            continue
        rows.append(dict(case=case, dtype=r['dtype'], path=r['path'], ours_ms=r['median_ms'],
                         official_ms=ref['median_ms'],
                         time_ratio=r['median_ms'] / ref['median_ms'],
                         memory_ratio=(r['peak_gib'] / ref['peak_gib']
                                       if r.get('peak_gib') and ref.get('peak_gib') else None)))
    return rows


# ------------------------------------------------------------------------------ report
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


def report(env: Dict, results: List[Dict], clock: Clock) -> str:
    out = ['# HI-Diff GPU check', '',
           '- ' + ', '.join(f'{k}: {v}' for k, v in env.items()),
           f'- total time: {clock.elapsed():.0f} s', '']
    parts = dict(
        a=('(a) Inference, eager (median ms; peak GiB = torch.cuda.max_memory_allocated, '
           'weights included; diff = max abs vs fp32 exact path)',
           ['model', 'size', 'dtype', 'path', 'median_ms', 'peak_gib', 'max_abs_diff',
            'status']),
        d=('(d) Inference, torch.compile of the Transformer (diff = max abs vs the fp32 exact '
           'eager output; compile_s = the first call)',
           ['model', 'size', 'dtype', 'path', 'compile_s', 'median_ms', 'peak_gib',
            'max_abs_diff', 'status']),
        b=('(b) Training step (median ms per step; loss_diff = |first loss - fp32 exact|)',
           ['stage', 'dtype', 'path', 'batch', 'median_ms', 'peak_gib', 'first_loss',
            'loss_diff', 'loss_scale', 'status']),
        e=('(e) The official networks, fp32, the same weights (median ms; peak GiB)',
           ['model', 'size', 'stage', 'median_ms', 'peak_gib', 'status']),
        c=('(c) DDP training run through tools/train.py',
           ['run', 'backend', 'config', 'wall_s', 'stages', 'ema_in_ckpt',
            'ema_differs_from_raw', 'loss_scaler_state', 'status']),
    )
    for key in 'abcde':
        rows = [r for r in results if r.get('part') == key]
        if rows:
            title, columns = parts[key]
            out += [f'## {title}', '', table(rows, columns), '']
    ratios = side_by_side(results)
    if ratios:
        out += ['## Ours / official (time and peak memory ratios, same device)', '',
                table(ratios, ['case', 'dtype', 'path', 'ours_ms', 'official_ms', 'time_ratio',
                               'memory_ratio']), '']
    return '\n'.join(out)


# ------------------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cpu', action='store_true', help='run on CPU (CUDA parts replaced)')
    parser.add_argument('--tiny', action='store_true', help='tiny model and sizes')
    parser.add_argument('--out', default=os.environ.get('OUT') or './gpu_out')
    parser.add_argument('--budget', type=float, default=320,
                        help='seconds; later cases are skipped past it (compile first)')
    parser.add_argument('--parts', nargs='+', default=list('abcd'), choices=list('abcde'),
                        help='(e) needs --official')
    parser.add_argument('--official', help='checkout of the official HI-Diff code, for (e)')
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
                        help='(b) with activation checkpointing of the Transformer')
    parser.add_argument('--ddp-iters', type=int, default=8)
    parser.add_argument('--ddp-switch', type=int, default=4)
    parser.add_argument('--write-stubs', metavar='DIR',
                        help='only write import stand-ins for missing ' + '/'.join(STUBS))
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(sizes=['32x32', '48x24'] if tiny else ['256x256', '1280x720'],
                    compile_sizes=['32x32'] if tiny else ['256x256', '1280x720'],
                    repeats=2 if tiny else 5, batch=2 if tiny else 8,
                    patch=32 if tiny else 128, train_steps=2 if tiny else 5)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> List[Dict]:
    args = parse_args(argv)
    if args.write_stubs:
        written = write_stubs(args.write_stubs)
        print('import stand-ins written for: ' + (', '.join(written) or 'none needed'))
        return []
    clock = Clock(args.budget)
    os.makedirs(args.out, exist_ok=True)
    import torch

    import hidiff_mm  # noqa: F401  # isort: skip  (compat before mmagic; registers HI-Diff)
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    if args.cpu:
        device = torch.device('cpu')
    elif torch.cuda.is_available():
        device = torch.device('cuda', 0)
        torch.cuda.set_device(device)
    else:
        log('No CUDA device: running on CPU (pass --cpu to say so)')
        device = torch.device('cpu')
    env = environment(device, args)
    log('environment: ' + json.dumps(env))
    results: List[Dict] = []
    # part deadlines (seconds from start), scaled to the budget: eager inference, training
    # steps and the DDP run first; torch.compile takes what is left
    ends = dict(a=0.3, b=0.5, e=0.65, c=0.8, d=1.0)
    model = build_model(args.tiny, device)

    def save(final: bool = False) -> str:
        """Write the tables and the JSON (after every part, so a killed run keeps them)."""
        text = report(env, results, clock)
        with open(osp.join(args.out, 'gpu_check.md'), 'w') as f:
            f.write(text + '\n')
        with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
            json.dump(dict(environment=env, results=results, total_s=clock.elapsed(),
                           complete=final), f, indent=1, default=str)
        return text

    steps = dict(
        a=lambda: inference_cases(model, device, args, clock, results, False, args.sizes,
                                  ends['a'] * args.budget),
        b=lambda: train_cases(model, device, args, clock, results, ends['b'] * args.budget),
        c=lambda: ddp_case(device, args, clock, results, ends['c'] * args.budget),
        e=lambda: official_cases(model, device, args, clock, results, ends['e'] * args.budget),
        d=lambda: inference_cases(model, device, args, clock, results, True,
                                  args.compile_sizes, ends['d'] * args.budget))
    if 'e' in args.parts and (not args.official or args.tiny):
        parser_error = 'part (e) needs --official PATH and the full-size model (no --tiny)'
        raise SystemExit(f'gpu_check.py: error: {parser_error}')
    for part in 'abecd':
        if part in args.parts:
            steps[part]()
            save()
    print(save(final=True))
    log(f'wrote {args.out}/gpu_check.md and gpu_check.json ({clock.elapsed():.0f} s)')
    return results


if __name__ == '__main__':
    main()
