"""The sampler / schedule / one-stage study of docs/samplers.md, on the quick-start data.

For each seed: the study's stage 1 (configs/hidiff/study/hidiff_study_s1.py), six stage-2 runs
from it that differ only in the diffusion's parameterisation, beta schedule or training chain
(the official posterior-mean chain or DDIM), and a one-stage run as long as stage 1 + stage 2
(hidiff_study_onestage.py), each through ``tools/train.py`` in a subprocess on one thread (runs
whose final checkpoint exists are kept). Then every run is scored blind on the test split with
every sampler at 8/4/2/1 steps: PSNR / SSIM (MMagic's functions on 8-bit RGB), the mean L1
distance of the sampled prior to the stage-1 encoder's prior of the same pair (what the
diffusion is trained to reproduce), and the CPU time per image (median). Every image draws its
``z_T`` from the same seeded generator in every setting, so settings are compared on the same
noise. Prints Markdown tables; writes the raw numbers (``--json``) and a figure (``--figure``).

    python tools/make_synthetic_blur.py --out data/synthetic      # the quick-start data
    OMP_NUM_THREADS=1 nohup python benchmarks/sampler_study.py \\
        --json benchmarks/results/sampler_study.json --figure docs/figures/sampler_study.png &
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmengine import Config, DictAction

# first: the compatibility layer must be applied before anything imports mmagic (done lazily
# below, in the functions that need it)
import hidiff_mm  # noqa: F401
from hidiff_mm.models.layers import convert_for_device

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STUDY = osp.join(REPO, 'configs', 'hidiff', 'study')
CONFIGS = dict(s1=osp.join(STUDY, 'hidiff_study_s1.py'), s2=osp.join(STUDY, 'hidiff_study_s2.py'),
               onestage=osp.join(STUDY, 'hidiff_study_onestage.py'))
ITERS = dict(s1=600, s2=600, onestage=1200)
# stage-2 variants: the scheduler options that differ from the GoPro model's (eps, linear,
# trained through the official posterior-mean chain)
VARIANTS = {
    'eps, linear': {},
    'x0, linear': dict(prediction_type='sample'),
    'v, linear': dict(prediction_type='v_prediction'),
    'eps, sqrt-linear': dict(beta_schedule='sqrt_linear'),
    'eps, cosine': dict(beta_schedule='cosine'),
    'eps, linear, DDIM-trained': dict(sampler='ddim'),  # trained through the DDIM chain
}
SAMPLERS = {
    'official': 'posterior_mean',
    'DDIM': dict(type='ddim', eta=0.0),
    'DDIM eta=1': dict(type='ddim', eta=1.0),
    'DPM-Solver++(2M)': dict(type='dpmsolver++', solver_order=2),
}
STEPS = (8, 4, 2, 1)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def scheduler_options(overrides: dict) -> List[str]:
    return [f'model.prior_head.scheduler.{k}={v}' for k, v in overrides.items()]


def train(kind: str, work_dir: str, seed: int, options: List[str]) -> str:
    """Train one run (unless its final checkpoint exists); return that checkpoint."""
    ckpt = osp.join(work_dir, f'iter_{ITERS[kind]}.pth')
    if osp.exists(ckpt):
        return ckpt
    os.makedirs(work_dir, exist_ok=True)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIGS[kind], '--work-dir',
           work_dir, '--cfg-options', f'randomness.seed={seed}',
           f'train_cfg.max_iters={ITERS[kind]}', f'default_hooks.checkpoint.interval={ITERS[kind]}',
           *options]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    start = time.time()
    with open(osp.join(work_dir, 'study_train.log'), 'w') as out:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    usage = os.times()
    if proc.returncode != 0 or not osp.exists(ckpt):
        raise RuntimeError(f'{kind} run failed ({proc.returncode}); see {work_dir}/study_train.log')
    log(f'trained {work_dir} in {time.time() - start:.0f} s wall '
        f'(children CPU so far {usage.children_user:.0f} s)')
    return ckpt


def read_pairs(data_root: str) -> List[Tuple[torch.Tensor, np.ndarray]]:
    """Test pairs: blurry (1, 3, H, W) RGB in [0, 1] and sharp (H, W, 3) RGB uint8."""
    pairs = []
    for path in sorted(glob.glob(osp.join(data_root, 'test', 'input', '*.png'))):
        blur = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        sharp = cv2.cvtColor(cv2.imread(path.replace(f'{os.sep}input{os.sep}',
                                                     f'{os.sep}target{os.sep}')),
                             cv2.COLOR_BGR2RGB)
        pairs.append((torch.from_numpy(blur).permute(2, 0, 1)[None].float() / 255, sharp))
    if not pairs:
        raise FileNotFoundError(f'no test pairs under {data_root}/test; run '
                                'tools/make_synthetic_blur.py first')
    return pairs


def load_model(kind: str, options: List[str], ckpt: str):
    from mmagic.registry import MODELS
    cfg = Config.fromfile(CONFIGS[kind])
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction, default={})
    cfg.merge_from_dict(parser.parse_args(['--o', *options]).o if options else {})
    model = MODELS.build(cfg.model)
    checkpoint = torch.load(ckpt, map_location='cpu', weights_only=True)
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    # the configured schedule must be the one the run recorded (DiffusionSettingsHook)
    model.prior_head.scheduler.compare_settings(checkpoint['meta']['hidiff_diffusion'])
    return convert_for_device(model).eval(), cfg.model.prior_head.scheduler


@torch.no_grad()
def score(model, scheduler_cfg: dict, pairs, sampler, steps: int) -> Dict[str, float]:
    """Blind prediction of every pair with this sampler and step count."""
    from mmagic.evaluation.metrics.psnr import psnr
    from mmagic.evaluation.metrics.ssim import ssim
    from mmagic.registry import DIFFUSION_SCHEDULERS
    model.prior_head.scheduler = DIFFUSION_SCHEDULERS.build(dict(scheduler_cfg, sampler=sampler))
    psnrs, ssims, prior_err, t_prior, t_total = [], [], [], [], []
    for i, (blur, sharp) in enumerate(pairs):
        gt = torch.from_numpy(sharp).permute(2, 0, 1)[None].float() / 255
        start = time.process_time()  # CPU time: one thread, steadier than wall time here
        prior = model.blind_prior(blur, torch.Generator().manual_seed(1000 + i), steps)
        t_prior.append(time.process_time() - start)
        start = time.process_time()
        out = model.forward_tensor(blur, generator=torch.Generator().manual_seed(1000 + i),
                                   steps=steps)
        t_total.append(time.process_time() - start)
        prior_err.append((prior - model.prior_head.encode(blur, gt)).abs().mean().item())
        img = (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        psnrs.append(psnr(img, sharp))
        ssims.append(ssim(img, sharp))
    return dict(psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims)),
                prior_l1=float(np.mean(prior_err)), ms_prior=1e3 * float(np.median(t_prior)),
                ms_image=1e3 * float(np.median(t_total)))


def input_scores(pairs) -> Dict[str, float]:
    from mmagic.evaluation.metrics.psnr import psnr
    from mmagic.evaluation.metrics.ssim import ssim
    imgs = [((b[0] * 255).round().byte().permute(1, 2, 0).numpy(), s) for b, s in pairs]
    return dict(psnr=float(np.mean([psnr(a, s) for a, s in imgs])),
                ssim=float(np.mean([ssim(a, s) for a, s in imgs])))


def mean_spread(values: List[float], digits: int) -> str:
    """'mean ± half the range' over seeds."""
    return f'{np.mean(values):.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}'


def table(rows: List[dict], runs: List[str], settings: List[Tuple[str, int]]) -> str:
    """Markdown: one line per (run, sampler, steps), metrics as mean ± half-range over seeds."""
    lines = ['| run | sampler | steps | PSNR (dB) | SSIM | prior L1 | prior CPU ms | '
             'image CPU ms |', '|---|---|---|---|---|---|---|---|']
    for run in runs:
        for sampler, steps in settings:
            sel = [r for r in rows if r['run'] == run and r['sampler'] == sampler
                   and r['steps'] == steps]
            if not sel:
                continue
            lines.append(
                f"| {run} | {sampler} | {steps} | {mean_spread([r['psnr'] for r in sel], 2)} | "
                f"{mean_spread([r['ssim'] for r in sel], 4)} | "
                f"{mean_spread([r['prior_l1'] for r in sel], 3)} | "
                f"{np.mean([r['ms_prior'] for r in sel]):.1f} | "
                f"{np.mean([r['ms_image'] for r in sel]):.0f} |")
    return '\n'.join(lines)


def figure(rows: List[dict], path: str) -> None:
    """Against steps, one line per sampler (error bars: range over seeds): PSNR and prior
    error of the eps/linear two-stage runs (the official setting), prior error of the
    x0/linear runs."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('two-stage, eps, linear', 'psnr', 'PSNR (dB), eps-prediction'),
              ('two-stage, eps, linear', 'prior_l1', 'prior L1, eps-prediction'),
              ('two-stage, x0, linear', 'prior_l1', 'prior L1, x0-prediction')]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (run, key, title) in zip(axes, panels):
        for sampler in SAMPLERS:
            vals = [[r[key] for r in rows if r['run'] == run and r['sampler'] == sampler
                     and r['steps'] == steps] for steps in STEPS]
            means = [np.mean(v) for v in vals]
            spread = [[m - min(v) for m, v in zip(means, vals)],
                      [max(v) - m for m, v in zip(means, vals)]]
            ax.errorbar(STEPS, means, yerr=spread, marker='o', capsize=3, label=sampler)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('sampler steps (T = 8)')
        ax.set_xticks(STEPS)
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle('Study model (docs/samplers.md), 3 seeds: mean and range; prior L1 = '
                 'L1(sampled prior, stage-1 prior)', fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)


CONTRASTS = [  # (label, setting A, setting B): A - B per seed
    ('official chain, 4 vs 8 steps', ('two-stage, eps, linear', 'official', 4),
     ('two-stage, eps, linear', 'official', 8)),
    ('official chain, 1 vs 8 steps', ('two-stage, eps, linear', 'official', 1),
     ('two-stage, eps, linear', 'official', 8)),
    ('DDIM 8 vs official 8', ('two-stage, eps, linear', 'DDIM', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('DPM-Solver++ 4 vs official 8', ('two-stage, eps, linear', 'DPM-Solver++(2M)', 4),
     ('two-stage, eps, linear', 'official', 8)),
    ('x0 vs eps (official 8)', ('two-stage, x0, linear', 'official', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('v vs eps (official 8)', ('two-stage, v, linear', 'official', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('sqrt-linear vs linear (official 8)', ('two-stage, eps, sqrt-linear', 'official', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('cosine vs linear (official 8)', ('two-stage, eps, cosine', 'official', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('DDIM-trained, DDIM 8 vs official-trained, official 8',
     ('two-stage, eps, linear, DDIM-trained', 'DDIM', 8),
     ('two-stage, eps, linear', 'official', 8)),
    ('x0 model: official 2 vs eps model official 8', ('two-stage, x0, linear', 'official', 2),
     ('two-stage, eps, linear', 'official', 8)),
    ('x0 model: DPM-Solver++ 4 vs its official 8',
     ('two-stage, x0, linear', 'DPM-Solver++(2M)', 4), ('two-stage, x0, linear', 'official', 8)),
    ('one-stage vs two-stage (official 8)', ('one-stage, eps, linear', 'official', 8),
     ('two-stage, eps, linear', 'official', 8)),
]


def contrasts(rows: List[dict]) -> str:
    """Markdown: per-seed differences A - B (paired: same seed, same test noise), mean and
    [min, max] over seeds."""
    def pick(seed, run, sampler, steps):
        return next(r for r in rows if r['seed'] == seed and r['run'] == run
                    and r['sampler'] == sampler and r['steps'] == steps)

    seeds = sorted({r['seed'] for r in rows})
    lines = ['| A - B | PSNR (dB) | SSIM | prior L1 |', '|---|---|---|---|']
    for label, a, b in CONTRASTS:
        cells = []
        for key, digits in (('psnr', 2), ('ssim', 4), ('prior_l1', 3)):
            d = [pick(s, *a)[key] - pick(s, *b)[key] for s in seeds]
            cells.append(f'{np.mean(d):+.{digits}f} [{min(d):+.{digits}f}, '
                         f'{max(d):+.{digits}f}]')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run_study(args) -> dict:
    """Train what is missing, score every run; the results as written to ``--json``."""
    if not osp.isdir(osp.join(args.data, 'train')):
        subprocess.run([sys.executable, osp.join(REPO, 'tools', 'make_synthetic_blur.py'),
                        '--out', args.data], check=True, env=dict(os.environ, PYTHONPATH=REPO))
    data = [f'train_dataloader.dataset.data_root={args.data}/train',
            f'val_dataloader.dataset.data_root={args.data}/test']

    runs = []  # (run name, seed, config kind, cfg options, checkpoint)
    for seed in args.seeds:
        root = osp.join(args.work_dir, f'seed{seed}')
        s1 = train('s1', osp.join(root, 's1'), seed, data)
        for name, overrides in VARIANTS.items():
            options = data + [f'model.init_from_stage1={s1}'] + scheduler_options(overrides)
            work = osp.join(root, 's2_' + re.sub('[^a-z0-9]+', '_', name.lower()))
            runs.append((f'two-stage, {name}', seed, 's2', options,
                         train('s2', work, seed, options)))
        options = data
        runs.append(('one-stage, eps, linear', seed, 'onestage', options,
                     train('onestage', osp.join(root, 'onestage'), seed, options)))

    from mmagic.utils import register_all_modules
    register_all_modules()
    pairs = read_pairs(args.data)
    rows = []
    for name, seed, kind, options, ckpt in runs:
        model, scheduler_cfg = load_model(kind, options, ckpt)
        for sampler_name, sampler in SAMPLERS.items():
            for steps in STEPS:
                rows.append(dict(run=name, seed=seed, sampler=sampler_name, steps=steps,
                                 **score(model, scheduler_cfg, pairs, sampler, steps)))
        log(f'scored {name}, seed {seed}')

    cpu = dict(training_s=os.times().children_user + os.times().children_system,
               scoring_s=time.process_time())
    return dict(blurry=input_scores(pairs), num_pairs=len(pairs), rows=rows, seeds=args.seeds,
                iters=ITERS, cpu=cpu, torch=torch.__version__, threads=torch.get_num_threads())


def report(results: dict) -> None:
    rows, blurry, cpu = results['rows'], results['blurry'], results['cpu']
    all_settings = [(s, n) for s in SAMPLERS for n in STEPS]
    print(f'Blurry input: PSNR {blurry["psnr"]:.2f} dB, SSIM {blurry["ssim"]:.4f} '
          f'({results.get("num_pairs", 20)} test pairs). CPU time: training runs '
          f'{cpu["training_s"]:.0f} s (that invocation), scoring {cpu["scoring_s"]:.0f} s\n')
    print('## Samplers on the two-stage eps/linear model\n')
    print(table(rows, ['two-stage, eps, linear'], all_settings) + '\n')
    print('## Parameterisations and schedules (stage 2 at equal iterations)\n')
    print(table(rows, [f'two-stage, {v}' for v in VARIANTS],
                [('official', 8), ('DDIM', 4), ('DPM-Solver++(2M)', 4), ('official', 1)]) + '\n')
    print('## One stage vs two stages (1200 iterations in all)\n')
    print(table(rows, ['two-stage, eps, linear', 'one-stage, eps, linear'], all_settings) + '\n')
    print('## Paired differences (per seed)\n')
    print(contrasts(rows))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=osp.join(REPO, 'data', 'synthetic'))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'sampler_study'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--json', help='write the raw results here')
    parser.add_argument('--figure', help='write the PSNR / prior-error figure here')
    parser.add_argument('--from-json', help='report the results of an earlier run (no training '
                        'or scoring)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
    else:
        results = run_study(args)
    report(results)
    if args.json and not args.from_json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    if args.figure:
        figure(results['rows'], args.figure)


if __name__ == '__main__':
    main()
