"""What importing costs: ``import hidiff_mm`` and the data tools, time and peak RSS.

Each run is a fresh interpreter that imports one target and reports the seconds the import took
(interpreter start-up excluded) and its peak RSS (start-up included). With ``--before PATH`` (a
checkout or ``git archive`` of another commit) both trees are measured in alternation, run by
run, so that a busy machine slows both alike, and the ratios this tree / before are printed.

Targets: ``import hidiff_mm`` (compat layer, registration, so all of MMagic and torch), and
loading ``tools/make_synthetic_blur.py`` and ``tools/dataset_converters/gopro_patches.py`` as a
module (their imports; ``main`` does not run).

    python benchmarks/bench_import.py [--runs 7] [--before /tmp/hidiff_before] [--json out.json]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from _common import REPO, RESULT_TAG, cpu_name, emit, gib, peak_rss

TARGETS = {
    'import hidiff_mm': None,
    'tools/make_synthetic_blur.py': 'tools/make_synthetic_blur.py',
    'tools/dataset_converters/gopro_patches.py': 'tools/dataset_converters/gopro_patches.py',
}
TOOLBOX = ('torch', 'mmengine', 'mmcv', 'mmagic', 'hidiff_mm')


def worker(target: str, tree: str) -> None:
    """Import ``target`` from ``tree`` in this fresh process and emit the measurements."""
    import runpy
    import warnings
    warnings.filterwarnings('ignore')
    start = time.perf_counter()
    if TARGETS[target] is None:
        import hidiff_mm  # noqa: F401
    else:
        runpy.run_path(osp.join(tree, TARGETS[target]), run_name='bench_import')
    seconds = time.perf_counter() - start
    emit(dict(seconds=seconds, peak_rss=peak_rss(),
              toolbox=[m for m in TOOLBOX if m in sys.modules]))


def run_once(target: str, tree: str, threads: int) -> Dict:
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, osp.abspath(__file__), '--worker', target, '--tree',
                           tree], cwd=tree, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode or not lines:
        raise RuntimeError(f'{target} from {tree} failed (exit {proc.returncode})')
    return json.loads(lines[-1][len(RESULT_TAG):])


def summary(results: List[Dict]) -> Dict:
    return dict(median_s=statistics.median(r['seconds'] for r in results),
                min_s=min(r['seconds'] for r in results),
                median_peak_rss=statistics.median(r['peak_rss'] for r in results),
                toolbox=results[0]['toolbox'], runs=len(results))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=7, help='fresh processes per target and tree')
    parser.add_argument('--before', help='another tree to compare with (e.g. a git archive)')
    parser.add_argument('--threads', type=int, default=1, help='OMP_NUM_THREADS of the workers')
    parser.add_argument('--json', help='write the raw results here')
    parser.add_argument('--worker', choices=list(TARGETS), help=argparse.SUPPRESS)
    parser.add_argument('--tree', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.tree)

    trees = {'this tree': REPO}
    if args.before:
        trees['before'] = osp.abspath(args.before)
    raw = {name: {target: [] for target in TARGETS} for name in trees}
    for run in range(args.runs):
        for target in TARGETS:
            for name, tree in trees.items():
                raw[name][target].append(run_once(target, tree, args.threads))
                print(f'run {run + 1}/{args.runs}: {target} ({name}): '
                      f'{raw[name][target][-1]["seconds"]:.2f} s', file=sys.stderr)
    stats = {name: {t: summary(r) for t, r in by_target.items()} for name, by_target in raw.items()}

    print(f'CPU: {cpu_name()}, {os.cpu_count()} logical CPU(s); Python '
          f'{sys.version.split()[0]}; {args.runs} fresh processes per row, medians\n')
    print('| target | tree | import time | peak RSS | toolbox modules loaded |')
    print('|---|---|---|---|---|')
    for target in TARGETS:
        for name in trees:
            s = stats[name][target]
            print(f'| {target} | {name} | {s["median_s"]:.2f} s (min {s["min_s"]:.2f}) | '
                  f'{gib(s["median_peak_rss"])} | {", ".join(s["toolbox"]) or "none"} |')
    if 'before' in trees:
        print('\n| target | import time this / before | peak RSS this / before |')
        print('|---|---|---|')
        for target in TARGETS:
            a, b = stats['this tree'][target], stats['before'][target]
            print(f'| {target} | {a["median_s"] / b["median_s"]:.2f} | '
                  f'{a["median_peak_rss"] / b["median_peak_rss"]:.2f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(raw=raw, stats=stats), f, indent=1)


if __name__ == '__main__':
    main()
