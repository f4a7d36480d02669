# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The quick start: HI-Diff on the procedural blur set, end to end on CPU.

1. Write the synthetic blurred/sharp pairs (``tools/make_synthetic_blur.py``) unless present.
2. Train both HI-Diff stages with ``configs/hidiff_demo.py`` (``tools/train.py``); a finished run
   is reused, an interrupted one resumes.
3. Test the final checkpoint (``tools/test.py``) and print the metrics next to the PSNR of the
   blurry input.

Run from anywhere: ``.venv/bin/python tools/quickstart.py`` (paths are relative to the repo).
Extra arguments after ``--`` go to ``tools/train.py`` (e.g. ``-- --cfg-options
train_cfg.max_iters=60``).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/hidiff_demo.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default='data/synthetic', help='synthetic data root')
    parser.add_argument('--work-dir', default='work_dirs/hidiff_demo', help='training work dir')
    parser.add_argument('train_args', nargs=argparse.REMAINDER,
                        help='extra tools/train.py arguments, after --')
    args = parser.parse_args(argv)
    args.train_args = [a for a in args.train_args if a != '--']
    return args


def run(*cmd):
    print('+', ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO, env.get('PYTHONPATH')]))
    subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, check=True)


def last_checkpoint(work_dir):
    path = osp.join(REPO, work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(osp.join(REPO, args.data, 'test', 'target')):
        run('tools/make_synthetic_blur.py', '--out', args.data)

    data_options = [f'train_dataloader.dataset.data_root={args.data}/train',
                    f'val_dataloader.dataset.data_root={args.data}/test',
                    f'test_dataloader.dataset.data_root={args.data}/test']
    train_cmd = ['tools/train.py', CONFIG, '--work-dir', args.work_dir]
    if last_checkpoint(args.work_dir):
        train_cmd.append('--resume')  # finishes an interrupted run; a finished one returns at once
    if '--cfg-options' in args.train_args:
        i = args.train_args.index('--cfg-options')
        args.train_args[i + 1:i + 1] = data_options
        train_cmd += args.train_args
    else:
        train_cmd += args.train_args + ['--cfg-options', *data_options]
    run(*train_cmd)

    ckpt = last_checkpoint(args.work_dir)
    if ckpt is None:
        sys.exit(f'quickstart: no checkpoint found in {args.work_dir}')
    out = osp.join(REPO, args.work_dir, 'quickstart_metrics.json')
    run('tools/test.py', CONFIG, ckpt, '--work-dir', args.work_dir, '--out', out,
        '--cfg-options', *data_options)
    with open(out) as f:
        metrics = json.load(f)
    shown = osp.relpath(ckpt, REPO) if ckpt.startswith(REPO + os.sep) else ckpt
    print(f'\nquickstart: {shown} on {args.data}/test')
    for name, value in sorted(metrics.items()):
        print(f'  {name}: {value:.4f}' if isinstance(value, float) else f'  {name}: {value}')
    psnr, blurry = metrics.get('PSNR'), metrics.get('blurry_input/PSNR')
    if psnr is not None and blurry is not None:
        print(f'quickstart: PSNR {blurry:.2f} dB (blurry input) -> {psnr:.2f} dB (HI-Diff), '
              f'{psnr - blurry:+.2f} dB; a small model trained for minutes on CPU')


if __name__ == '__main__':
    from light_import import import_alone  # tools/ is sys.path[0] when run as a script
    import_alone('utils.cli').run(main)
