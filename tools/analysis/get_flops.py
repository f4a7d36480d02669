"""Parameters and MACs of a HI-Diff model, per sub-network and for blind inference.

Usage::

    python tools/analysis/get_flops.py CONFIG [--shape 3 256 256] [--steps T] [--json]

``CONFIG`` is any config whose ``model`` is a ``HIDiff`` editor. Weights are random (counts do
not depend on them). The table lists

* the generator (official ``net_g``),
* the stage-2 encoder (``LE_DM``, sees the blurry image only),
* the denoiser, for one step and for the ``T`` steps of the sampler (its parameters once),
* the inference total = generator + stage-2 encoder + T denoiser steps, i.e. what
  ``HIDiff.forward_tensor`` runs, and
* the stage-1 encoder (``LE``, sees sharp + blurry; training only, not in the total).

The model is counted in its exact form (``convert_to_exact``: the official arithmetic), whatever
form it had and on every device; the CPU fast form computes the same function with other
products. MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on CPU, under
``no_grad``, batch 1: it counts convolutions and matrix products (``mm``/``addmm``/``bmm``/
``baddbmm``/attention kernels), ``MACs = FLOPs / 2``. Normalisation, softmax, activations and
other element-wise work are not counted, as in the usual fvcore/ptflops-style figures. The
image is padded by the editor (``HIDiff.pad``) first, as in prediction. The whole
``forward_tensor`` with the same ``T`` is counted as well and must equal the sum of the parts
(the sampler's own arithmetic is element-wise).
"""
import argparse
import json
import os.path as osp
import sys
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import hidiff_mm  # noqa: E402,F401  (compatibility layer first; registers HI-Diff modules)
from hidiff_mm.models.layers import convert_to_exact  # noqa: E402
from hidiff_mm.utils.cli import key_value, run, user_input  # noqa: E402
from hidiff_mm.utils.errors import ConfigError, InputError  # noqa: E402

# Row keys of a report, in table order.
PART_NAMES = {
    'generator': 'generator (net_g)',
    'encoder_s2': 'stage-2 encoder (LE_DM)',
    'denoiser_step': 'denoiser, 1 step',
    'denoiser_all': 'denoiser, x T steps',
    'total': 'inference total',
    'encoder_s1': 'stage-1 encoder (LE, training only)',
}


def count_params(module: Optional[nn.Module]) -> int:
    """``sum(p.numel())`` over the parameters of ``module`` (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_macs(fn: Callable, *args, **kwargs) -> int:
    """Multiply-accumulates of ``fn(*args, **kwargs)``: FlopCounterMode FLOPs / 2, no_grad."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    flops = counter.get_total_flops()
    return flops // 2


def parse_shape(values: Sequence[int]) -> Tuple[int, int, int]:
    """``[S]``, ``[H, W]`` or ``[C, H, W]`` -> ``(C, H, W)`` (C defaults to 3)."""
    values = [int(v) for v in values]
    if len(values) == 1:
        return 3, values[0], values[0]
    if len(values) == 2:
        return 3, values[0], values[1]
    if len(values) == 3:
        return tuple(values)
    raise InputError(f'--shape takes 1 (S), 2 (H W) or 3 (C H W) values, got {values}')


def build_model(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the ``model`` of a config file (its ``custom_imports`` are imported)."""
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    with user_input(f'config {config}'):
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    register_all_modules()
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    return MODELS.build(cfg.model)


def _check_hidiff(model: nn.Module) -> None:
    head = getattr(model, 'prior_head', None)
    if getattr(model, 'generator', None) is None or head is None or not all(
            hasattr(head, name) for name in ('encoder_s2', 'denoiser', 'scheduler')):
        raise ConfigError(f'expected a HIDiff editor (generator + prior_head), got '
                          f'{type(model).__name__}')


def hidiff_complexity(model: nn.Module,
                      shape: Sequence[int] = (3, 256, 256),
                      steps: Optional[int] = None,
                      check_total: bool = True) -> Dict:
    """Params and MACs of a HIDiff editor's parts for one ``(1, C, H, W)`` image, counted on
    the exact form (``model`` is converted to it and left in eval mode).

    Returns ``dict(shape, padded_shape, steps, parts, measured_total_macs)``; ``parts`` maps the
    keys of :data:`PART_NAMES` to ``dict(params, macs, in_total)``. ``denoiser_all`` repeats the
    denoiser's parameters (shared by all steps) but is counted once in ``total``.
    ``measured_total_macs`` is the count of the whole ``forward_tensor`` with the same options
    (None when ``check_total`` is False).
    """
    _check_hidiff(model)
    c, h, w = parse_shape(shape)
    head = model.prior_head
    with user_input('--steps'):
        steps = model.prediction_options(steps=steps).steps or len(head.scheduler)
    hp, wp = model.pad(torch.zeros(1, c, h, w)).shape[-2:]

    convert_to_exact(model).eval()
    gen = torch.Generator().manual_seed(0)
    blur = torch.rand(1, c, hp, wp, generator=gen)
    sharp = torch.rand(1, c, hp, wp, generator=gen)
    with torch.no_grad():
        cond = head.encoder_s2(blur)
    z_t = torch.randn(cond.shape, generator=gen)
    t = torch.full((1, ), max(steps - 1, 0), dtype=torch.long)

    parts = {}
    parts['generator'] = dict(params=count_params(model.generator),
                              macs=count_macs(model.generator, blur, cond), in_total=True)
    parts['encoder_s2'] = dict(params=count_params(head.encoder_s2),
                               macs=count_macs(head.encoder_s2, blur), in_total=True)
    step = dict(params=count_params(head.denoiser),
                macs=count_macs(head.denoiser, z_t, cond, t), in_total=False)
    parts['denoiser_step'] = step
    parts['denoiser_all'] = dict(params=step['params'], macs=steps * step['macs'],
                                 in_total=True)
    parts['total'] = dict(
        params=sum(parts[k]['params'] for k in ('generator', 'encoder_s2', 'denoiser_step')),
        macs=sum(parts[k]['macs'] for k in ('generator', 'encoder_s2', 'denoiser_all')),
        in_total=None)
    encoder_s1 = getattr(head, 'encoder_s1', None)
    if encoder_s1 is not None:
        parts['encoder_s1'] = dict(params=count_params(encoder_s1),
                                   macs=count_macs(encoder_s1, blur, sharp), in_total=False)

    measured = None
    if check_total:
        measured = count_macs(lambda x: model.forward_tensor(x, steps=steps),
                              torch.rand(1, c, h, w, generator=gen))
    return dict(shape=(c, h, w), padded_shape=(c, hp, wp), steps=steps, parts=parts,
                measured_total_macs=measured)


def format_params(n: int) -> str:
    return f'{n:,} ({n / 1e6:.2f} M)'


def format_macs(n: int) -> str:
    g = n / 1e9
    if g >= 1:
        return f'{g:.2f} G'
    return f'{g:.3f} G' if g >= 0.01 else f'{n / 1e6:.3f} M'


def format_report(report: Dict) -> str:
    """The report as a Markdown table (plus the forward_tensor cross-check line)."""
    steps = report['steps']
    rows: List[Tuple[str, str, str, str]] = []
    for key, part in report['parts'].items():
        name = PART_NAMES[key].replace('x T', f'x {steps}')
        params = format_params(part['params'])
        if key == 'denoiser_all':
            params = '(shared with 1 step)'
        in_total = {True: 'yes', False: 'no', None: '='}[part['in_total']]
        if key == 'total':
            name = f'**{name}**'
        rows.append((name, params, format_macs(part['macs']), in_total))
    header = ('part', 'params', 'MACs', 'in total')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]

    def line(cells):
        return '| ' + ' | '.join(c.ljust(wd) for c, wd in zip(cells, widths)) + ' |'

    c, h, w = report['shape']
    out = [f'input {c}x{h}x{w} (batch 1)'
           + ('' if report['padded_shape'] == report['shape']
              else ' padded to {}x{}x{}'.format(*report['padded_shape']))
           + f', T = {steps} sampler steps', '',
           line(header), '|' + '|'.join('-' * (wd + 2) for wd in widths) + '|']
    out += [line(r) for r in rows]
    measured = report['measured_total_macs']
    if measured is not None:
        total = report['parts']['total']['macs']
        verdict = 'matches' if measured == total else f'DIFFERS by {measured - total:,}'
        out += ['', f'forward_tensor counted as a whole: {format_macs(measured)} '
                f'({measured:,} MACs) - {verdict} the sum of the parts ({total:,} MACs)']
    out += ['', 'MACs = FlopCounterMode FLOPs / 2 (convolutions and matrix products only).']
    return '\n'.join(out)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Params and MACs of a HI-Diff model per sub-network (FlopCounterMode)')
    parser.add_argument('config', help='config file whose model is a HIDiff editor')
    parser.add_argument('--shape', type=int, nargs='+', default=[3, 256, 256],
                        help='input size: S, H W or C H W (default 3 256 256)')
    parser.add_argument('--steps', type=int, default=None,
                        help="sampler steps T (default: the scheduler's num_train_timesteps)")
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, type=key_value,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def main(argv=None) -> Dict:
    warnings.filterwarnings('ignore', category=FutureWarning)
    args = parse_args(argv)
    from mmengine.logging import MMLogger

    # Modules log to the latest MMLogger, which prints to stdout: make a fresh WARNING-level one
    # the latest, so INFO lines stay out of the table / JSON.
    name = 'hidiff_get_flops'
    while MMLogger.check_instance_created(name):
        name += '_'
    MMLogger.get_instance(name, log_level='WARNING')
    model = build_model(args.config, args.cfg_options)
    report = hidiff_complexity(model, args.shape, args.steps)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return report


if __name__ == '__main__':
    run(main)
