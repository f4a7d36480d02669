# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Ship a trained demo model: export its weights and record how well they deblur.

From the last checkpoint of a ``configs/hidiff_demo_shake.py`` run (``tools/train.py``), or of
the last of several runs that each continue the one before
(``configs/hidiff_demo_shake_continue.py`` loads the first run's last checkpoint), in order:

1. ``demo_model/hidiff_demo_shake.pth``: the weights alone (no optimizer), stored as float16
   (half the size; every number below is measured with these rounded weights, loaded into the
   float32 model), with the checkpoint's record (``hidiff_mm.utils.training_record``): its
   training stage and diffusion settings, so ``init_model`` and ``tools/test.py`` check them
   against the config they load it with. A checkpoint without a stage is refused; one without
   diffusion settings (runs before they were recorded) gets those of ``DEMO_CONFIG``, the config
   the demo model trains with.
2. ``demo_model/record.json``: PSNR/SSIM of the blurry input and of the output on the procedural
   test sets of shapes and of dead leaves (seeds 0-4 each) and on the blurred photographs
   (seeds 0-4, per image too, and grouped by how blurred they are), the PSNR of the output to
   the input for sharp photographs ("sharp in, sharp out"), the per-image PSNR that
   ``tests/test_quickstart.py`` checks, the run's final validation and its train time;
   with ``--self-ensemble`` also the same sets with the output averaged over the 8 dihedral
   transforms of the input.
3. ``demo_model/training_curve.png``: loss and validation PSNR from the runs' logged scalars,
   one iteration axis over all of them.

    python tools/record_demo_model.py work_dirs/hidiff_demo_shake \
        work_dirs/hidiff_demo_shake_continue
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from typing import List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.apis.demo_model import (DEMO_CONFIG, DEMO_DIR, DEMO_RECORD,  # noqa: E402
                                       DEMO_WEIGHTS, evaluate_pairs, format_summary,
                                       init_demo_model, photo_gain_by_blur, procedural_test_pairs,
                                       sharp_photo_pairs, summarize, summarize_sharp)
from hidiff_mm.datasets.photos import make_photo_pairs  # noqa: E402
from hidiff_mm.utils.errors import InputError  # noqa: E402
from hidiff_mm.utils.io import load_weights_file  # noqa: E402
from hidiff_mm.utils.training_record import DIFFUSION_KEY, STAGE_KEY  # noqa: E402
from hidiff_mm.visualization.figures import chain_scalars, training_curves_figure  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
CHECK_IMAGES = 8  # per-image PSNR of the first test images of seed 0, for the reproduction test


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+',
                        help='work dirs of the finished training run, or of runs that each '
                        'continue the one before, in order (the weights are the last one\'s)')
    parser.add_argument('--switch-iter', type=int, default=3500,
                        help='stage switch of the run (marked on the curve)')
    parser.add_argument('--self-ensemble', action='store_true',
                        help='also record the 8x self-ensemble (8x the evaluation time)')
    return parser.parse_args(argv)


def export_weights(checkpoint: str, out: str) -> dict:
    """Write the float16 state dict of ``checkpoint`` to ``out`` (atomically) with the
    checkpoint's training record; return the meta written."""
    ckpt = load_weights_file(checkpoint)  # weights only, MMEngine's globals in their scope
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt['state_dict'].items()}
    meta = dict(source=osp.basename(checkpoint), iter=ckpt['meta'].get('iter'),
                seed=ckpt['meta'].get('seed'), dtype='float16',
                **demo_record(ckpt['meta'], checkpoint))
    tmp = out + '.tmp'
    torch.save(dict(meta=meta, state_dict=state), tmp)
    os.replace(tmp, out)
    return meta


def demo_record(meta: dict, checkpoint: str) -> dict:
    """``{hidiff_stage, hidiff_diffusion}`` of a demo training checkpoint's ``meta``."""
    if STAGE_KEY not in meta:
        raise InputError(f'{checkpoint} records no training stage (meta[{STAGE_KEY!r}]); '
                         'export a checkpoint of a run with StageSwitchHook or '
                         'DiffusionSettingsHook')
    diffusion = meta.get(DIFFUSION_KEY)
    if diffusion is None:
        from mmagic.registry import DIFFUSION_SCHEDULERS
        from mmengine.config import Config
        scheduler = Config.fromfile(DEMO_CONFIG).model.prior_head.scheduler
        diffusion = DIFFUSION_SCHEDULERS.build(scheduler).settings()
        print(f'{checkpoint} records no diffusion settings: recording those of {DEMO_CONFIG}')
    return {STAGE_KEY: meta[STAGE_KEY], DIFFUSION_KEY: diffusion}


def train_seconds(records: List[dict]) -> float:
    """Sum of the logged per-iteration ``time`` over the records of a run (training steps)."""
    records = [r for r in records if 'time' in r and 'loss' in r]
    steps = [r['step'] for r in records]
    # each record is the mean over the logger interval that ends at its step
    return sum(r['time'] * (s - p) for r, s, p in zip(records, steps, [0] + steps[:-1]))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    with open(osp.join(args.work_dirs[-1], 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    meta = export_weights(checkpoint, DEMO_WEIGHTS)
    model = init_demo_model()
    record = dict(weights=meta, seeds={}, dead_leaves={}, photos={}, photos_per_image={})
    if args.self_ensemble:
        record['self_ensemble'] = dict(seeds={}, dead_leaves={}, photos={})
    for seed in SEEDS:
        for key, label, pairs in (
                ('seeds', 'procedural', procedural_test_pairs(seed)),
                ('dead_leaves', 'dead leaves', procedural_test_pairs(seed, scene='dead_leaves')),
                ('photos', 'photographs', make_photo_pairs(seed))):
            rows = evaluate_pairs(model, pairs)
            record[key][seed] = summarize(rows)
            print(format_summary(f'{label} seed {seed}', record[key][seed]))
            if key == 'seeds' and seed == 0:
                record['check'] = {r['name']: dict(psnr_blurry=r['psnr_blurry'],
                                                   psnr_output=r['psnr_output'])
                                   for r in rows[:CHECK_IMAGES]}
            if key == 'photos':
                record['photos_per_image'][seed] = {
                    r['name']: dict(psnr_blurry=r['psnr_blurry'], psnr_output=r['psnr_output'])
                    for r in rows}
            if args.self_ensemble:
                summary = summarize(evaluate_pairs(model, pairs, self_ensemble=True))
                record['self_ensemble'][key][seed] = summary
                print(format_summary(f'{label} seed {seed}, 8x self-ensemble', summary))
    record['photos_by_blur'] = photo_gain_by_blur(
        [r for rows in record['photos_per_image'].values() for r in rows.values()])
    record['sharp_photos'] = summarize_sharp(evaluate_pairs(model, sharp_photo_pairs()))
    print(f'sharp photographs: output to input {record["sharp_photos"]["psnr_mean"]:.2f} dB on '
          f'average, worst {record["sharp_photos"]["psnr_min"]:.2f} dB')
    records, restarts = chain_scalars(args.work_dirs)
    record['final_val'] = [r for r in records if 'PSNR' in r][-1]
    record['train_seconds'] = round(train_seconds(records))
    record['train_iters'] = max(r['step'] for r in records if 'loss' in r)
    with open(DEMO_RECORD, 'w') as f:
        json.dump(record, f, indent=1)
    training_curves_figure(records, osp.join(DEMO_DIR, 'training_curve.png'),
                           switch_iter=args.switch_iter, restarts=restarts,
                           title='demo model: ' + ', '.join(osp.basename(w.rstrip('/'))
                                                            for w in args.work_dirs))
    print(f'{DEMO_WEIGHTS} ({osp.getsize(DEMO_WEIGHTS) / 2**20:.1f} MiB), {DEMO_RECORD}, '
          f'training_curve.png; {record["train_seconds"]} s of training steps, run '
          f'{re.sub(r"^.*/", "", checkpoint)}')
    return 0


if __name__ == '__main__':
    from hidiff_mm.utils.cli import run
    run(main)
