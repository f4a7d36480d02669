# Copyright (c) hidiff_mm contributors. All rights reserved.
"""A results table (Markdown + JSON) of test metrics beside published numbers.

The published numbers are data, not code: they are read from a model-zoo ``metafile.yml``
(MMagic's format: ``Models[i].Results[j] = {Dataset, Metrics: {PSNR, SSIM}, Task}``). What the
table shows is set by a config entry, e.g. (``configs/hidiff_leaderboard_gopro.py``)::

    results_table = dict(
        title='HI-Diff (GoPro-trained)',
        paper=dict(metafile='configs/hidiff/metafile.yml', model='hidiff_gopro_official'),
        rows=[
            dict(dataset='GoPro', protocol='...',
                 metrics=dict(PSNR='GoPro/MATLABPSNR', SSIM='GoPro/MATLABSSIM'),
                 extra=dict(SSIM_per_channel='GoPro/SSIM')),
            ...])

Each row's ``metrics`` maps a column name (also the name in the metafile's ``Metrics``) to the
key of the test metrics dict; ``extra`` adds measured columns without a published value.
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmengine

from ..utils.errors import InputError


def load_paper_results(metafile: str, model: str) -> Dict[str, Dict[str, float]]:
    """``{dataset: {metric: value}}`` of ``model`` in the MMagic-format ``metafile``."""
    if not osp.isfile(metafile):
        raise FileNotFoundError(f'metafile not found: {metafile}')
    meta = mmengine.load(metafile)
    for entry in meta.get('Models', []):
        if entry.get('Name') == model:
            return {r['Dataset']: {k: float(v) for k, v in r.get('Metrics', {}).items()}
                    for r in entry.get('Results', [])}
    names = [e.get('Name') for e in meta.get('Models', [])]
    raise InputError(f'model {model!r} not in {metafile} (models: {names})')


def _number(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, 'item') else value)
    return value


def build_results_table(metrics: Dict[str, float], spec: dict,
                        num_images: Optional[Sequence[Optional[int]]] = None,
                        info: Optional[dict] = None) -> dict:
    """The table as a JSON-able dict: one row per ``spec['rows']`` entry with ``ours``,
    ``paper``, ``delta`` (ours - paper) and ``extra`` values (``None`` where missing)."""
    paper_cfg = spec.get('paper')
    paper = load_paper_results(paper_cfg['metafile'], paper_cfg['model']) if paper_cfg else {}
    rows = []
    for i, row in enumerate(spec['rows']):
        published = paper.get(row.get('paper_dataset', row['dataset']), {})
        ours = {name: _number(metrics.get(key)) for name, key in row['metrics'].items()}
        theirs = {name: published.get(name) for name in row['metrics']}
        delta = {name: (ours[name] - theirs[name])
                 if ours[name] is not None and theirs[name] is not None
                 and math.isfinite(ours[name]) else None for name in row['metrics']}
        rows.append(dict(
            dataset=row['dataset'],
            num_images=num_images[i] if num_images is not None and i < len(num_images) else None,
            protocol=row.get('protocol', ''),
            ours=ours, paper=theirs, delta=delta,
            extra={name: _number(metrics.get(key)) for name, key in row.get('extra', {}).items()},
            metric_keys=dict(row['metrics'], **row.get('extra', {}))))
    return dict(title=spec.get('title', 'Results'),
                paper_source=spec.get('paper_source', paper_cfg and paper_cfg.get('source')),
                **(info or {}), rows=rows)


def _fmt(value: Optional[float], digits: int, signed: bool = False) -> str:
    if value is None:
        return '–'
    if math.isinf(value):
        return 'inf'
    return f'{value:+.{digits}f}' if signed else f'{value:.{digits}f}'


def results_table_markdown(table: dict) -> str:
    """Markdown: one row per dataset, ours / paper / delta for each metric, then extras."""
    rows = table['rows']
    names: List[str] = []
    extras: List[str] = []
    for row in rows:
        names += [n for n in row['ours'] if n not in names]
        extras += [n for n in row['extra'] if n not in extras]
    digits = {n: 2 if 'PSNR' in n.upper() else 4 for n in names + extras}
    header = ['Dataset', 'Images']
    for n in names:
        header += [f'{n} (ours)', f'{n} (paper)', f'Δ {n}']
    header += [f'{n.replace("_", " ")} (ours)' for n in extras] + ['Protocol']
    lines = [f"### {table['title']}", '', '| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(['---'] + ['---:'] * (len(header) - 2) + ['---']) + '|']
    for row in rows:
        cells = [row['dataset'], '–' if row['num_images'] is None else str(row['num_images'])]
        for n in names:
            cells += [_fmt(row['ours'].get(n), digits[n]), _fmt(row['paper'].get(n), digits[n]),
                      _fmt(row['delta'].get(n), digits[n], signed=True)]
        cells += [_fmt(row['extra'].get(n), digits[n]) for n in extras]
        cells.append(row['protocol'])
        lines.append('| ' + ' | '.join(cells) + ' |')
    notes = [(k, table.get(k)) for k in ('paper_source', 'config', 'checkpoint') if table.get(k)]
    if notes:
        lines.append('')
        lines += [f'- {k.replace("_", " ")}: {v}' for k, v in notes]
    return '\n'.join(lines) + '\n'


def write_results_table(table: dict, out_stem: str) -> List[str]:
    """Write ``<out_stem>_table.md`` and ``<out_stem>_table.json``; return both paths."""
    md, js = f'{out_stem}_table.md', f'{out_stem}_table.json'
    with open(md, 'w', encoding='utf-8') as f:
        f.write(results_table_markdown(table))
    with open(js, 'w', encoding='utf-8') as f:
        json.dump(table, f, indent=2, ensure_ascii=False, allow_nan=True)
        f.write('\n')
    return [md, js]
