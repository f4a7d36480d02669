# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The quick start: HI-Diff deblurring camera shake on CPU, with pictures, in a few minutes.

1. Evaluate the shipped demo model (``demo_model/``, trained by this project's recipe
   ``configs/hidiff_demo_shake.py`` and its continuations) on three seeds of each held-out
   procedural camera-shake test set (shapes; dead leaves), on real photographs blurred by
   camera shake (never trained on) and on sharp photographs, which must come out as they went
   in; print PSNR/SSIM of the blurry input and of the output.
2. Draw (a) blurry | HI-Diff | sharp for a few test images of each set and for photographs (with
   "sharp in, sharp out" rows under them), (c) the
   diffusion trajectory (the output guided by each prior z_T ... z_0) for one image.
3. Fine-tune the model briefly through the real pipeline: ``tools/train.py`` with
   ``configs/hidiff_demo_shake_finetune.py`` (stage 1, StageSwitchHook, stage 2, the runner's
   validation) on pairs written by ``tools/make_synthetic_blur.py``; draw (b) its training
   curves from the scalars it logged. A finished run is reused, an interrupted one resumes.
   It runs in the background (log in ``<out>/finetune.log``) while steps 1-2 run here, one
   torch thread each.

The figures, the deblurred images and ``summary.json`` go to ``--out`` (default
``work_dirs/quickstart``). ``--photo PATH`` (an image or a folder) instead deblurs your own
images with the demo model, into the same folder as the figures.

Run from anywhere: ``.venv/bin/python tools/quickstart.py`` (relative paths are the repo's; run
from an installed package, ``<site-packages>/hidiff_mm/.mim/tools/quickstart.py``, they are the
working directory's).
Extra arguments after ``--`` go to ``tools/train.py`` (e.g. ``-- --cfg-options
train_cfg.max_iters=60``).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

import cv2
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))  # the repo, or an installed hidiff_mm/.mim
sys.path.insert(0, REPO)
ROOT = os.getcwd() if osp.basename(REPO) == '.mim' else REPO  # what relative paths start from

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis import deblur, diffusion_trajectory, list_images  # noqa: E402
from hidiff_mm.apis.demo_model import (TEST_SET, evaluate_pairs, format_summary,  # noqa: E402
                                       init_demo_model, procedural_test_pairs, sharp_photo_pairs,
                                       summarize, summarize_sharp)
from hidiff_mm.datasets.photos import make_photo_pairs  # noqa: E402
from hidiff_mm.visualization.figures import (read_scalars, side_by_side_figure,  # noqa: E402
                                             training_curves_figure, trajectory_figure)

FINETUNE_CONFIG = 'configs/hidiff_demo_shake_finetune.py'
GAIN_TARGET = 2.0  # dB over the blurry input, on every seed
FIGURE_ROWS = 4
SHARP_ROWS = 2  # "sharp in, sharp out" rows under the blurred photographs
SWITCH_ITER = 60  # of FINETUNE_CONFIG


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='work_dirs/quickstart',
                        help='figures, deblurred images and summary.json')
    parser.add_argument('--photo', help='deblur this image, or the images of this folder, '
                        'with the demo model (nothing else runs)')
    parser.add_argument('--tile', type=int, default=None,
                        help='with --photo: run the Transformer on tiles of this size '
                        '(a multiple of 8) to bound memory on large images')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='seeds of the procedural test set')
    parser.add_argument('--num-test', type=int, default=TEST_SET['num'],
                        help='test images per seed')
    parser.add_argument('--data', default='data/quickstart',
                        help='where the fine-tuning pairs are written')
    parser.add_argument('--work-dir', default='work_dirs/quickstart_finetune',
                        help='work dir of the fine-tuning run')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='average the outputs of the 8 dihedral transforms of each input '
                        '(flips and 90-degree rotations): a few tenths of a dB more, 8x the '
                        'evaluation time')
    parser.add_argument('--skip-finetune', action='store_true',
                        help='only evaluate and draw the shipped model')
    parser.add_argument('train_args', nargs=argparse.REMAINDER,
                        help='extra tools/train.py arguments, after --')
    args = parser.parse_args(argv)
    args.train_args = [a for a in args.train_args if a != '--']
    return args


def repo_path(path: str) -> str:
    return path if osp.isabs(path) else osp.join(ROOT, path)


def tool_env() -> Dict[str, str]:
    """The environment of the tool subprocesses: the repo importable, one torch thread."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO, env.get('PYTHONPATH')]))
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run(*cmd: str) -> None:
    print('+', ' '.join(cmd), flush=True)
    subprocess.run([sys.executable, *cmd], cwd=REPO, env=tool_env(), check=True)


def last_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(repo_path(work_dir), 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def shown(path: str) -> str:
    """``path`` relative to the repo when it lies inside it."""
    return osp.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def write_rgb(path: str, rgb) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write {path}')
    return path


def deblur_photos(model, photo: str, out_dir: str, tile: Optional[int],
                  self_ensemble: bool = False) -> List[str]:
    """Deblur ``photo`` (a file or a folder of images) into ``out_dir/<stem>_hidiff.png``."""
    if osp.isdir(photo):
        paths = list_images(photo)
        if not paths:
            raise FileNotFoundError(f'--photo {photo}: no image files in this folder')
    elif osp.isfile(photo):
        paths = [photo]
    else:
        raise FileNotFoundError(f'--photo {photo}: no such file or folder')
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path in paths:
        out = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '_hidiff.png')
        if not cv2.imwrite(out, deblur(model, path, seed=0, tile=tile,
                                       self_ensemble=self_ensemble)):
            raise OSError(f'cannot write {out}')
        print(f'quickstart: {path} -> {out}')
        written.append(out)
    return written


def evaluate(model, seeds: List[int], num: int, figures: str,
             self_ensemble: bool = False) -> Dict:
    """Step 1 and figures (a) and (c)."""
    results: Dict = {'seeds': {}, 'dead_leaves': {}, 'self_ensemble': self_ensemble}
    first = {}
    for key, scene, label in (('seeds', 'shapes', 'procedural test set'),
                              ('dead_leaves', 'dead_leaves', 'dead-leaves test set')):
        for seed in seeds:
            rows = evaluate_pairs(model, procedural_test_pairs(seed, num, scene=scene),
                                  self_ensemble)
            results[key][seed] = summarize(rows)
            print(format_summary(f'{label}, seed {seed}', results[key][seed]), flush=True)
            first.setdefault(key, rows)
    photos = evaluate_pairs(model, make_photo_pairs(seed=0), self_ensemble)
    results['photos'] = summarize(photos)
    print(format_summary('photographs blurred by camera shake', results['photos']), flush=True)
    sharp = evaluate_pairs(model, sharp_photo_pairs(), self_ensemble)
    results['sharp_photos'] = summarize_sharp(sharp)
    print(f'sharp photographs in, output to input: {results["sharp_photos"]["psnr_mean"]:.2f} dB '
          f'on average, worst {results["sharp_photos"]["psnr_min"]:.2f} dB '
          f'({len(sharp)} images)', flush=True)

    results['figures'] = {}
    for key, name, label in (('seeds', 'side_by_side', 'procedural camera-shake test set'),
                             ('dead_leaves', 'dead_leaves_side_by_side', 'dead-leaves test set')):
        examples = [dict(r, name=f'test {r["name"]}') for r in first[key][:FIGURE_ROWS]]
        results['figures'][name] = side_by_side_figure(
            examples, osp.join(figures, f'a_{name}.png'),
            title=f'demo model, {label} (seed {seeds[0]})')
    sharp_rows = [dict(r, input_label='sharp in') for r in sharp[:SHARP_ROWS]]
    results['figures']['photos_side_by_side'] = side_by_side_figure(
        photos[:FIGURE_ROWS] + sharp_rows, osp.join(figures, 'a_photos_side_by_side.png'),
        title='demo model, photographs blurred by camera shake, and sharp in, sharp out '
        '(never trained on)')
    for r in photos:
        write_rgb(osp.join(figures, 'photos', f'{r["name"]}_blurry.png'), r['blurry'])
        write_rgb(osp.join(figures, 'photos', f'{r["name"]}_hidiff.png'), r['output'])

    img = first['seeds'][0]
    items = diffusion_trajectory(model, img['blurry'][..., ::-1].copy(), seed=0)
    items = [(label, bgr[..., ::-1]) for label, bgr in items]
    results['figures']['trajectory'] = trajectory_figure(
        items, img['sharp'], osp.join(figures, 'c_diffusion_trajectory.png'),
        title=f'test {img["name"]}: the output guided by each prior of the sampler')
    return results


def start_finetune(args: argparse.Namespace, log_path: str) -> subprocess.Popen:
    """Step 3: write the fine-tuning pairs, start ``tools/train.py`` in the background (one
    thread, its log in ``log_path``)."""
    if not osp.isdir(osp.join(repo_path(args.data), 'test', 'target')):
        k_min, k_max = TEST_SET['kernel_sizes']
        run('tools/make_synthetic_blur.py', '--out', repo_path(args.data), '--num-train', '200',
            '--num-val', '20', '--size', str(TEST_SET['size']), '--kernel-sizes', str(k_min),
            str(k_max), '--seed', str(args.seeds[0]))
    data = repo_path(args.data)
    data_options = [f'train_dataloader.dataset.data_root={data}/train',
                    f'val_dataloader.dataset.data_root={data}/test',
                    f'test_dataloader.dataset.data_root={data}/test']
    train_cmd = ['tools/train.py', FINETUNE_CONFIG, '--work-dir', repo_path(args.work_dir)]
    if last_checkpoint(args.work_dir):
        train_cmd.append('--resume')  # finishes an interrupted run; a finished one returns at once
    extra = list(args.train_args)
    if '--cfg-options' in extra:
        i = extra.index('--cfg-options')
        extra[i + 1:i + 1] = data_options
        train_cmd += extra
    else:
        train_cmd += extra + ['--cfg-options', *data_options]
    print('+', ' '.join(train_cmd), f'> {shown(log_path)} (in the background)', flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    with open(log_path, 'w') as log:
        return subprocess.Popen([sys.executable, *train_cmd], cwd=REPO, env=tool_env(),
                                stdout=log, stderr=subprocess.STDOUT)


def finish_finetune(args: argparse.Namespace, proc: subprocess.Popen, log_path: str,
                    figures: str) -> Dict:
    """Wait for the fine-tuning run; figure (b) from its logged scalars."""
    if proc.wait() != 0:
        with open(log_path) as f:
            tail = f.readlines()[-20:]
        sys.exit(f'quickstart: the fine-tuning run failed (exit code {proc.returncode}); the '
                 f'end of {shown(log_path)}:\n' + ''.join(tail))
    records = read_scalars(repo_path(args.work_dir))
    curve = training_curves_figure(
        records, osp.join(figures, 'b_training_curves.png'), switch_iter=SWITCH_ITER,
        title='fine-tuning the demo model: stage 1, then stage 2 (tools/train.py, '
        f'{osp.basename(FINETUNE_CONFIG)})')
    val = [r for r in records if 'PSNR' in r]
    result = {'figure': curve, 'checkpoint': last_checkpoint(args.work_dir), 'log': log_path}
    if val:
        result.update(first_val=val[0], last_val=val[-1])
        print(f'fine-tuning: validation PSNR {val[0]["PSNR"]:.2f} dB (iteration '
              f'{val[0]["step"]}) -> {val[-1]["PSNR"]:.2f} dB (iteration {val[-1]["step"]}); '
              f'blurry input {val[-1]["blurry_input/PSNR"]:.2f} dB', flush=True)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    out = repo_path(args.out)
    figures = osp.join(out, 'figures')
    model = init_demo_model()
    model.prediction_options(tile=args.tile, self_ensemble=args.self_ensemble)  # InputError
    if args.photo:
        deblur_photos(model, args.photo, figures, args.tile, args.self_ensemble)
        return 0

    # One thread each for the evaluation here and the fine-tuning run beside it: on two cores
    # that is faster than taking turns, and a single thread does not stall when the machine is
    # busy (two OpenMP threads slowed the evaluation 5x on a loaded machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        log_path = osp.join(out, 'finetune.log')
        proc = None if args.skip_finetune else start_finetune(args, log_path)
        summary = evaluate(model, args.seeds, args.num_test, figures, args.self_ensemble)
        summary['time_evaluate_s'] = time.perf_counter() - start
        if proc is not None:
            summary['finetune'] = finish_finetune(args, proc, log_path, figures)
    finally:
        torch.set_num_threads(threads)
    summary['time_total_s'] = time.perf_counter() - start
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)

    method = 'demo model with the 8x self-ensemble' if args.self_ensemble else 'demo model'
    print(f'\nquickstart: {method}, PSNR gain on test seeds {", ".join(map(str, args.seeds))} '
          f'(target {GAIN_TARGET:+.1f} dB on every seed):')
    for key, label in (('seeds', 'procedural shapes'), ('dead_leaves', 'dead leaves')):
        gains = [s['psnr_gain'] for s in summary[key].values()]
        print(f'  {label}: {", ".join(f"{g:+.2f}" for g in gains)} dB '
              f'({"met" if min(gains) >= GAIN_TARGET else "NOT met"})')
    print(f'  photographs (seed 0): {summary["photos"]["psnr_gain"]:+.2f} dB')
    print(f'  sharp photographs in, output to input: '
          f'{summary["sharp_photos"]["psnr_mean"]:.2f} dB on average, worst '
          f'{summary["sharp_photos"]["psnr_min"]:.2f} dB')
    print('quickstart: figures')
    figure_paths = dict(summary['figures'])
    if 'finetune' in summary:
        figure_paths['training_curves'] = summary['finetune']['figure']
    for name, path in figure_paths.items():
        print(f'  {name}: {shown(path)}')
    print(f'quickstart: done in {summary["time_total_s"]:.0f} s; summary in '
          f'{shown(osp.join(out, "summary.json"))}')
    return 0


if __name__ == '__main__':
    from light_import import import_alone  # tools/ is sys.path[0] when run as a script
    import_alone('utils.cli').run(main)
