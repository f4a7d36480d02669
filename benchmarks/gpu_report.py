"""GPU check: join the parts that ``gpu_*.py`` wrote into one report.

Usage (``benchmarks/gpu_check.sh`` runs it last)::

    python benchmarks/gpu_report.py [--out DIR]

Reads ``OUT/gpu_<part>.json`` for the parts that ran ((a) ``gpu_inference.py``, (b)
``gpu_train_step.py``, (c) ``gpu_ddp.py``, (d) ``gpu_inference.py --compile``, (e)
``gpu_official.py``) and writes the Markdown tables to stdout and ``OUT/gpu_check.md``, all rows
to ``OUT/gpu_check.json``; with (e), also the ratios ours / official of each (a) prediction and
(b) step on the same device.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List

from _common import table


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


def report(env: Dict, results: List[Dict], total_s: float) -> str:
    out = ['# HI-Diff GPU check', '',
           '- ' + ', '.join(f'{k}: {v}' for k, v in env.items()),
           f'- total time: {total_s:.0f} s', '']
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


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=os.environ.get('OUT') or './gpu_out')
    args = parser.parse_args(argv)
    env, results, total, complete = {}, [], 0.0, True
    for part in 'abecd':
        path = osp.join(args.out, f'gpu_{part}.json')
        if osp.exists(path):
            with open(path) as f:
                data = json.load(f)
            env = env or data['environment']
            results += data['results']
            total += data['total_s']
            complete = complete and data['complete']
    text = report(env, results, total)
    with open(osp.join(args.out, 'gpu_check.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
        json.dump(dict(environment=env, results=results, total_s=total, complete=complete), f,
                  indent=1, default=str)
    print(text)
    return text


if __name__ == '__main__':
    main()
