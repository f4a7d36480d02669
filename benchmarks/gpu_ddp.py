"""GPU check, part (c): a DDP (nccl) training run of HI-Diff through ``tools/train.py``.

Usage (``benchmarks/gpu_check.sh`` runs it on a GPU machine)::

    python benchmarks/gpu_ddp.py [--out DIR] [--budget S] [--ddp-iters 8] [--ddp-switch 4]
    python benchmarks/gpu_ddp.py --cpu --tiny            # CPU smoke run (gloo, fp32)

``torchrun --nproc_per_node 1 tools/train.py CFG --launcher pytorch`` on a tiny set of
blurred/sharp PNG pairs (8 train, 2 val, 64 px), CFG being
``configs/hidiff/hidiff_gopro_amp_ema.py`` (bf16 AMP + EMA) with the data, the sizes and the
iterations shrunk, the stage switch moved to iteration ``--ddp-switch`` and a total batch of 4
pairs made of 2 accumulated micro-batches of 2 (DDP ``no_sync``); checks the checkpoints (stage 1
then 2, EMA state, AMP loss-scaler state); the run's output goes to ``OUT/ddp_train.log``. On CPU:
gloo and a plain OptimWrapper. Writes ``OUT/gpu_c.json``; ``gpu_report.py`` makes the tables.
"""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from _common import CONFIGS, REPO, TINY_MODEL, Clock, gpu_args, gpu_parser, guarded, run_part

DDP_CONFIG = osp.join(CONFIGS, 'hidiff', 'hidiff_gopro_amp_ema.py')


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
        from hidiff_mm.utils import load_weights_file
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
        # MMEngine checkpoints: weights only, with MMEngine's globals in their scope
        ckpt = load_weights_file(osp.join(work_dir, f'iter_{args.ddp_iters}.pth'))
        stages = {osp.basename(p): load_weights_file(p)['meta'].get('hidiff_stage')
                  for p in glob.glob(osp.join(work_dir, 'iter_*.pth'))}
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


def main(argv=None) -> List[Dict]:
    args = gpu_args(gpu_parser(__doc__.split('\n\n')[0]), argv)
    return run_part('c', args, lambda device, clock, rows: ddp_case(
        device, args, clock, rows, args.budget))


if __name__ == '__main__':
    main()
