# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Train a model with MMEngine's Runner, in the style of MMagic's tools/train.py.

Differences from MMagic's script:

* ``import hidiff_mm`` (which applies :mod:`hidiff_mm.compat` and registers the HI-Diff modules)
  runs before anything imports mmagic; this script itself never imports mmagic.
* ``--resume`` takes an optional checkpoint path; without one it resumes from the checkpoint
  ``last_checkpoint`` names or, if that one is missing or damaged, the newest readable
  ``iter_<N>.pth`` of the work dir (and says so). ``--load-from`` initialises the weights only.
* The checkpoint to resume or load from is read (weights only) and checked against the model
  before training starts: a missing, damaged or unfitting file is reported by name.
* The runner is built by ``hidiff_mm.engine.build_runner``: it loads MMEngine checkpoints
  (``--resume``, ``load_from``) under ``torch.load(weights_only=True)``.
* Multi-process runs without CUDA use gloo (see ``hidiff_mm.engine.launcher``).
* Faults (see docs/reliability.md and ``hidiff_mm.engine.fault_tolerance``): checkpoints are
  written atomically and outdated ones deleted only after a successful save
  (``AtomicCheckpointHook``); SIGTERM / SIGINT save the finished iteration and stop
  (``SignalCheckpointHook``, exit status 128 + signal); a failed save, an unreadable image, a
  dead DataLoader worker or peer process or a non-finite loss end the run with one line that
  names the cause and the checkpoint to ``--resume`` from (exit status 1). User errors (bad
  config, files, options) are one line with exit status 2; ``--debug`` shows tracebacks.
"""
import argparse
import logging
import os
import os.path as osp
import signal
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from quiet import quiet_imports  # tools/quiet.py (tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

# Importing hidiff_mm applies hidiff_mm.compat and registers the HI-Diff modules; it must come
# before anything imports mmagic (the mmengine modules above do not).
from hidiff_mm.engine import SignalCheckpointHook, build_runner, fault_tolerant_hooks  # noqa: E402
from hidiff_mm.engine.fault_tolerance import checkpoint_to_load, training_fault  # noqa: E402
from hidiff_mm.engine.launcher import setup_cpu_distributed, teardown_distributed  # noqa: E402
from hidiff_mm.utils import cli  # noqa: E402
from hidiff_mm.utils.checkpoint import check_fits, state_dict_of  # noqa: E402
from hidiff_mm.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint; without a path, from the latest readable '
        'checkpoint in the work dir')
    parser.add_argument(
        '--load-from', help='initialise the weights from this checkpoint (no resume)')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        type=cli.key_value,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file. If the value to be overwritten is a list, it should be '
        'like key="[a,b]" or key=a,b. It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]". Note that the quotation marks are necessary and that no white '
        'space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank; torchrun
    # sets the LOCAL_RANK environment variable instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.resume is not None and args.load_from is not None:
        parser.error('--resume and --load-from exclude each other')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_amp(cfg):
    """Switch ``OptimWrapper`` (or each one of an optimizer-wrapper dict) to AMP."""
    optim_wrapper = cfg.optim_wrapper
    if optim_wrapper.get('constructor', 'DefaultOptimWrapperConstructor') == \
            'DefaultOptimWrapperConstructor':
        wrappers = [optim_wrapper]
    else:
        wrappers = [v for v in optim_wrapper.values() if isinstance(v, dict) and 'type' in v]
    for wrapper in wrappers:
        if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.', logger='current',
                      level=logging.WARNING)
            continue
        if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
            raise ConfigError('`--amp` is only supported when the optimizer wrapper type is '
                              f'OptimWrapper, but got {wrapper.get("type")}.')
        wrapper.type = 'AmpOptimWrapper'
        wrapper.loss_scale = 'dynamic'


def build_cfg(args):
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    elif args.load_from is not None:
        cfg.resume = False
        cfg.load_from = args.load_from
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with cli.user_input(f'config {args.config}'):
        cfg = build_cfg(args)
    fault_tolerant_hooks(cfg)
    ckpt_path, checkpoint = checkpoint_to_load(cfg)
    setup_cpu_distributed(cfg, args.launcher)

    runner = build_runner(cfg)
    if checkpoint is not None:
        check_fits(runner.model, state_dict_of(checkpoint, ckpt_path), ckpt_path,
                   allow_missing=not cfg.resume)
        del checkpoint
    print_log(f'Working directory: {cfg.work_dir}', logger='current')
    print_log(f'Log directory: {runner._log_dir}', logger='current')

    try:
        runner.train()
    except Exception as err:
        fault = training_fault(err, runner)
        if fault is None:
            raise
        raise fault from err

    print_log(f'Log saved under {runner._log_dir}', logger='current')
    print_log(f'Checkpoint saved under {cfg.work_dir}', logger='current')
    teardown_distributed()
    stop = next(h for h in runner.hooks if isinstance(h, SignalCheckpointHook))
    if stop.stopped_by:
        name = signal.Signals(stop.stopped_by).name
        print(f'{osp.basename(sys.argv[0])}: stopped by {name} after iteration {stop.stop_iter};'
              f' checkpoint {stop.checkpoint}. Run the same command with --resume to continue.',
              file=sys.stderr, flush=True)
        return 128 + stop.stopped_by
    return 0


if __name__ == '__main__':
    cli.run(main)
