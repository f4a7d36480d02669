# Copyright (c) hidiff_mm contributors. All rights reserved.
"""PNG figures of deblurring results and training runs (matplotlib, no display needed).

* :func:`side_by_side_figure`: rows of blurry | HI-Diff | sharp, PSNR/SSIM under each image.
* :func:`training_curves_figure`: loss and validation PSNR (output and blurry input) against the
  iteration, read from the ``scalars.json`` that MMEngine's ``LocalVisBackend`` logs (one run,
  or runs that continue each other: :func:`chain_scalars`).
* :func:`trajectory_figure`: the output guided by each prior ``z_T ... z_0`` of the sampler
  (:func:`hidiff_mm.apis.diffusion_trajectory`), PSNR under each.

Images are RGB uint8 ``(H, W, 3)`` unless a docstring says otherwise; PSNR is MMagic's (the
value its ``PSNR`` metric reports).
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmagic.evaluation.metrics import psnr

LOSS_KEYS = ('loss', 'loss_pix', 'loss_prior')
OUTPUT_PSNR_KEY = 'PSNR'
INPUT_PSNR_KEY = 'blurry_input/PSNR'


def save_figure(fig: Figure, out: str, dpi: int = 100) -> str:
    """Write ``fig`` as a PNG to ``out`` (folders created); returns ``out``."""
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi, format='png')
    return out


def _show(ax, img: np.ndarray, title: str, caption: str) -> None:
    ax.imshow(img, interpolation='nearest')
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(caption, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def side_by_side_figure(rows: Sequence[Dict], out: str, title: str = '') -> str:
    """blurry | HI-Diff | sharp, one row per image, the PSNR (and SSIM) under each result.

    Args:
        rows: dicts with ``name``, ``blurry``, ``output``, ``sharp`` (RGB uint8, same shape)
            and optionally ``ssim_blurry`` / ``ssim_output`` (shown when given) and
            ``input_label`` (the first column's title, default ``'blurry'``; a row whose input
            is the sharp image itself shows "sharp in, sharp out").
        out: PNG path.
        title: figure title.

    Returns:
        ``out``.
    """
    if not rows:
        raise ValueError('side_by_side_figure needs at least one row')
    height = 2.8 * len(rows) + (0.4 if title else 0)
    fig = Figure(figsize=(7.5, height))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for ax_row, row in zip(axes, rows):
        captions = []
        for key in ('blurry', 'output'):
            value = psnr(row[key], row['sharp'])
            text = 'identical' if np.isinf(value) else f'PSNR {value:.2f} dB'
            if f'ssim_{key}' in row:
                text += f', SSIM {row[f"ssim_{key}"]:.3f}'
            captions.append(text)
        _show(ax_row[0], row['blurry'], f'{row["name"]}: {row.get("input_label", "blurry")}',
              captions[0])
        _show(ax_row[1], row['output'], 'HI-Diff', captions[1])
        _show(ax_row[2], row['sharp'], 'sharp', 'reference')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.4 / height if title else 0)))
    return save_figure(fig, out)


def read_scalars(work_dir: str) -> List[Dict]:
    """The records of every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (resumed runs write
    one per start), ordered by ``step``; a later record of the same step and kind wins.

    MMEngine's ``LoggerHook`` logs validation metrics at ``step = epoch`` unless
    ``log_metric_by_epoch=False``, i.e. at step 0 in an iteration-based run. Such a validation
    record gets the step of the training record logged just before it in its file (validation
    runs at the end of an iteration that the logger records when ``val_interval`` is a multiple
    of the logging interval, as in this project's configs).

    Raises:
        FileNotFoundError: no scalars.json under ``work_dir``.
    """
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not paths:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir} (was the run '
                                'logged with LocalVisBackend?)')
    records = {}
    for path in paths:
        last_train_step = 0
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                is_val = OUTPUT_PSNR_KEY in rec
                if not is_val:
                    last_train_step = rec['step']
                elif rec['step'] == 0:
                    rec['step'] = last_train_step
                records[(rec['step'], is_val)] = rec
    return [records[k] for k in sorted(records)]


def chain_scalars(work_dirs: Sequence[str]) -> Tuple[List[Dict], List[int]]:
    """The records of runs that each continue the one before (``load_from`` its last
    checkpoint, so each counts its iterations from 0) as one run: a run's steps are shifted by
    the last training step of the runs before it.

    Returns:
        ``(records, starts)``: the records in step order, and the shifted first iteration of
        every run after the first.
    """
    chained, starts, offset = [], [], 0
    for i, work_dir in enumerate(work_dirs):
        records = read_scalars(work_dir)
        if i:
            starts.append(offset)
        chained += [dict(rec, step=rec['step'] + offset) for rec in records]
        offset += max((rec['step'] for rec in records if OUTPUT_PSNR_KEY not in rec), default=0)
    return chained, starts


def curves(records: Sequence[Dict], key: str) -> Tuple[List[int], List[float]]:
    """``(steps, values)`` of ``key`` over the records that have it."""
    pts = [(r['step'], float(r[key])) for r in records if key in r]
    return [s for s, _ in pts], [v for _, v in pts]


def training_curves_figure(records: Sequence[Dict], out: str, title: str = '',
                           switch_iter: Optional[int] = None,
                           restarts: Sequence[int] = ()) -> str:
    """Two panels from logged scalars: the training losses, and the validation PSNR of the
    output and of the blurry input; dotted lines mark the stage switch when given and the
    iterations where a continuing run (:func:`chain_scalars`) restarted the optimisation."""
    fig = Figure(figsize=(10, 3.6))
    ax_loss, ax_psnr = fig.subplots(1, 2)
    for key in LOSS_KEYS:
        steps, values = curves(records, key)
        if steps:
            ax_loss.plot(steps, values, label=key, linewidth=1)
    ax_loss.set_yscale('log')
    ax_loss.set_title('training loss (L1)', fontsize=10)
    for key, label, style in ((OUTPUT_PSNR_KEY, 'HI-Diff output', 'o-'),
                              (INPUT_PSNR_KEY, 'blurry input', 's--')):
        steps, values = curves(records, key)
        if steps:
            ax_psnr.plot(steps, values, style, label=label, markersize=3)
    ax_psnr.set_title('validation PSNR (dB)', fontsize=10)
    marks = [(switch_iter, ' stage 2')] if switch_iter is not None else []
    marks += [(step, ' restart') for step in restarts]
    for ax in (ax_loss, ax_psnr):
        for i, (step, label) in enumerate(marks):  # every other label lower: marks can be close
            ax.axvline(step, color='grey', linestyle=':', linewidth=1)
            ax.text(step, 1.0 - 0.06 * (i % 2), label, transform=ax.get_xaxis_transform(),
                    fontsize=8, va='top', color='grey')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)


def trajectory_figure(items: Sequence[Tuple[str, np.ndarray]], sharp: Optional[np.ndarray],
                      out: str, title: str = '', cols: int = 6) -> str:
    """Panels ``(label, RGB uint8)`` (the blurry input, then the output guided by each prior
    ``z_T ... z_0``), then the sharp image when given; PSNR against it under each panel."""
    panels = list(items) + ([('sharp', sharp)] if sharp is not None else [])
    if not panels:
        raise ValueError('trajectory_figure needs at least one panel')
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(2.2 * cols, 2.7 * rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (label, img) in zip(axes, panels):
        caption = ''
        if sharp is not None and img is not sharp:
            caption = f'PSNR {psnr(img, sharp):.2f} dB'
        _show(ax, img, label, caption)
    for ax in axes[len(panels):]:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)
