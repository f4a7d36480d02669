# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The shipped demo model (``demo_model/``) and its evaluation on held-out blurred images.

The demo model is ``configs/hidiff_demo_shake.py`` trained by ``tools/train.py`` (both stages)
and continued in stage 2 by ``configs/hidiff_demo_shake_continue.py`` (twice) and
``configs/hidiff_demo_leaves_finetune.py``, about 5 hours of a 2-core CPU;
``demo_model/README.md`` records how. Its test sets are made on the fly: the procedural
camera-shake sets of shapes and of dead leaves (the test splits that
``tools/make_synthetic_blur.py [--scene dead_leaves]`` would write, for any seed) and the
photographs of :mod:`hidiff_mm.datasets.photos`.
Predictions are seeded (image ``i`` samples its prior with seed ``i``), so every number here
is reproducible.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmagic.evaluation.metrics import psnr, ssim

from hidiff_mm.datasets.dead_leaves import make_dead_leaves_image
from hidiff_mm.datasets.photos import SHARP_PHOTOS, load_photos
from hidiff_mm.datasets.synthetic import make_sharp_image, make_split_pair
from hidiff_mm.utils.errors import InputError
from hidiff_mm.utils.mim import mim_path
from .inference import deblur, init_model

# The package's copies (hidiff_mm/.mim: links to the repository's folders in a checkout, files
# in an installed wheel), so that the demo model works from any working directory.
DEMO_DIR = mim_path('demo_model')
DEMO_CONFIG = mim_path('configs', 'hidiff_demo_shake.py')
DEMO_WEIGHTS = osp.join(DEMO_DIR, 'hidiff_demo_shake.pth')
DEMO_RECORD = osp.join(DEMO_DIR, 'record.json')
# The procedural test sets of the record: 128 px scenes, shake kernels of 9-31 px.
TEST_SET = dict(num=50, size=128, kernel_sizes=(9, 31))
# Their scenes: shapes, gratings and text (the demo model's training scenes) and dead leaves
# (natural-image statistics; ``make_synthetic_blur.py --scene``).
SCENES = dict(shapes=make_sharp_image, dead_leaves=make_dead_leaves_image)

Pair = Tuple[str, np.ndarray, np.ndarray]  # (name, blurred RGB uint8, sharp RGB uint8)


def init_demo_model(device: str = 'cpu') -> torch.nn.Module:
    """The shipped demo model, in eval mode."""
    return init_model(DEMO_CONFIG, DEMO_WEIGHTS, device)


def procedural_test_pairs(seed: int, num: int = TEST_SET['num'], size: int = TEST_SET['size'],
                          kernel_sizes: Tuple[int, int] = TEST_SET['kernel_sizes'],
                          scene: str = 'shapes') -> List[Pair]:
    """The first ``num`` pairs of the procedural test split with ``seed`` and ``scene`` (a key
    of :data:`SCENES`; never trained on: training uses the train split), named like the files
    ``make_synthetic_blur.py --scene <scene>`` writes."""
    if scene not in SCENES:
        raise InputError(f'scene must be one of {sorted(SCENES)}, got {scene!r}')
    return [(f'{i:06d}', *make_split_pair(seed, 'test', i, size, kernel_sizes, SCENES[scene]))
            for i in range(num)]


def sharp_photo_pairs(size: int = 256) -> List[Pair]:
    """``[(name, sharp, sharp)]`` for the photographs of
    :data:`~hidiff_mm.datasets.photos.SHARP_PHOTOS`: "sharp in, sharp out", where the output
    is scored against the input itself."""
    return [(name, img, img) for name, img in load_photos(size, SHARP_PHOTOS)]


def evaluate_pairs(model: torch.nn.Module, pairs: Sequence[Pair],
                   self_ensemble: Optional[bool] = None,
                   precision: Optional[str] = None) -> List[Dict]:
    """Deblur each pair's blurred image (prior seed = its index) and score it;
    ``self_ensemble``: average the 8 dihedral transforms; ``precision``: ``'fp32'`` or
    ``'bf16'`` (``None`` keeps the model's setting of either).

    Returns:
        One dict per pair: ``name``, ``blurry``, ``output``, ``sharp`` (RGB uint8) and MMagic's
        ``psnr_blurry``, ``psnr_output``, ``ssim_blurry``, ``ssim_output`` against the sharp one.
    """
    results = []
    for i, (name, blurred, sharp) in enumerate(pairs):
        output = deblur(model, np.ascontiguousarray(blurred[..., ::-1]), seed=i,
                        self_ensemble=self_ensemble, precision=precision)[..., ::-1]
        row = dict(name=name, blurry=blurred, output=np.ascontiguousarray(output), sharp=sharp)
        for key in ('blurry', 'output'):
            row[f'psnr_{key}'] = float(psnr(row[key], sharp))
            row[f'ssim_{key}'] = float(ssim(row[key], sharp))
        results.append(row)
    return results


def summarize(results: Sequence[Dict]) -> Dict[str, float]:
    """Means over images: PSNR/SSIM of the blurry input and of the output, and the gains."""
    if not results:
        raise ValueError('summarize needs at least one result')
    summary = {key: float(np.mean([r[key] for r in results]))
               for key in ('psnr_blurry', 'psnr_output', 'ssim_blurry', 'ssim_output')}
    summary['psnr_gain'] = summary['psnr_output'] - summary['psnr_blurry']
    summary['ssim_gain'] = summary['ssim_output'] - summary['ssim_blurry']
    summary['num_images'] = len(results)
    return summary


def summarize_sharp(results: Sequence[Dict]) -> Dict:
    """What the model does to sharp images (:func:`sharp_photo_pairs` through
    :func:`evaluate_pairs`): mean and worst PSNR of the output to the input, per image too."""
    psnrs = {r['name']: r['psnr_output'] for r in results}
    return dict(psnr_mean=float(np.mean(list(psnrs.values()))),
                psnr_min=float(min(psnrs.values())), psnr=psnrs)


def photo_gain_by_blur(per_image: Sequence[Dict], edges: Sequence[float] = (24.0, 28.0)
                       ) -> List[Dict]:
    """The photographs grouped by the PSNR of their blurry input (below ``edges[0]``, between,
    ``edges[-1]`` and above): per group the number of images, how many improved and the mean
    gain. ``per_image``: dicts with ``psnr_blurry`` and ``psnr_output``."""
    bounds = [-np.inf, *edges, np.inf]
    groups = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        rows = [r for r in per_image if low <= r['psnr_blurry'] < high]
        gains = [r['psnr_output'] - r['psnr_blurry'] for r in rows]
        groups.append(dict(low=float(low), high=float(high), images=len(rows),
                           improved=sum(g > 0 for g in gains),
                           mean_gain=float(np.mean(gains)) if gains else None))
    return groups


def format_summary(label: str, summary: Dict[str, float]) -> str:
    """One line: ``label: PSNR a -> b dB (+g), SSIM c -> d (+h), n images``."""
    return (f'{label}: PSNR {summary["psnr_blurry"]:.2f} -> {summary["psnr_output"]:.2f} dB '
            f'({summary["psnr_gain"]:+.2f} dB), SSIM {summary["ssim_blurry"]:.4f} -> '
            f'{summary["ssim_output"]:.4f} ({summary["ssim_gain"]:+.4f}), '
            f'{summary["num_images"]} images')
