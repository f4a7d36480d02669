# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Multi-process runs on CPU (gloo), for ``tools/train.py`` and ``tools/test.py``.

They call :func:`setup_cpu_distributed` before building the Runner and
:func:`teardown_distributed` at the end; both do nothing with CUDA or without a launcher.

MMEngine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` without checking for CUDA
(``_init_dist_slurm`` even divides by the GPU count), and ``Runner.wrap_model`` gives DDP
``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules. Without CUDA and with a launcher
other than ``none``, :func:`setup_cpu_distributed` therefore

1. initialises the process group with ``gloo`` itself (for slurm, first deriving ``RANK`` /
   ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_*`` from the ``SLURM_*`` variables, as MMEngine
   does); ``Runner.setup_env`` skips ``init_dist`` when a group exists, so the config's
   ``backend='nccl'`` is harmless;
2. sets ``model_wrapper_cfg.device_ids = None`` (keeping a config-provided wrapper type such as
   ``MMSeparateDistributedDataParallel``) and ``broadcast_buffers=False`` unless the config sets
   it.

:func:`teardown_distributed` then runs ``barrier()`` + ``destroy_process_group()``: without it a
rank sometimes aborts at exit ("terminate called without an active exception", 2 of 3 runs).

*Delete when:* MMEngine's launcher handles CPU/gloo itself.
"""
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config


def _slurm_to_env() -> None:
    """Export torch's env:// variables from SLURM's, like MMEngine does."""
    env = os.environ
    env.setdefault('RANK', env['SLURM_PROCID'])
    env.setdefault('WORLD_SIZE', env['SLURM_NTASKS'])
    env.setdefault('LOCAL_RANK', env.get('SLURM_LOCALID', '0'))
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        env['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a CPU-only multi-process run (see the module docstring).

    Args:
        cfg: The config; ``model_wrapper_cfg`` is updated in place.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        True if this call initialised a gloo process group.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    if 'find_unused_parameters' in cfg and 'find_unused_parameters' not in wrapper:
        wrapper['find_unused_parameters'] = cfg.find_unused_parameters
    cfg.model_wrapper_cfg = wrapper
    if dist.is_initialized():
        return False
    if launcher == 'slurm':
        _slurm_to_env()
    dist.init_process_group(backend='gloo')
    return True


def teardown_distributed() -> None:
    """Synchronise and destroy the default process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
