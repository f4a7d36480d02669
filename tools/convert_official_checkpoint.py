"""Convert official HI-Diff release files into one MMEngine checkpoint for ``load_from``.

Usage::

    python tools/convert_official_checkpoint.py net_g.pth net_le_dm.pth net_d.pth \
        --out checkpoints/hidiff_gopro.pth [--config configs/hidiff/hidiff_s2_gopro.py]

Each input is an official BasicSR file (``{'params': state_dict}``); its role (net_g, net_le,
net_le_dm, net_d) and the GoPro/RealBlur layout are recognised from the keys, not the file
name. Without ``--config`` the layout's default config is used to check every key and shape.
The output records, as training checkpoints do (``hidiff_mm.utils.training_record``), the stage
the networks come from (2 with net_le_dm, the released test weights; else 1) and the diffusion
settings the official run trained with (the layout's default config's scheduler, whatever
``--config`` samples with), so loading it under a config that disagrees is checked.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from quiet import quiet_imports  # noqa: E402  (tools/quiet.py; tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

import hidiff_mm  # noqa: E402,F401  (applies the compatibility layer first)
from hidiff_mm.models.official import (EDITOR_PREFIX, official_role, official_variant,  # noqa: E402
                                       strip_official)
from hidiff_mm.utils import atomic_torch_save, load_weights_file  # noqa: E402
from hidiff_mm.utils.cli import run, user_input  # noqa: E402
from hidiff_mm.utils.errors import InputError  # noqa: E402
from hidiff_mm.utils.training_record import DIFFUSION_KEY, STAGE_KEY  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIGS = {
    'gopro': osp.join(REPO, 'configs', 'hidiff', 'hidiff_s2_gopro.py'),
    'realblur': osp.join(REPO, 'configs', 'hidiff', 'hidiff_s2_realblur_j.py'),
}


def load_official(paths: List[str]) -> Dict[str, Dict[str, torch.Tensor]]:
    """role -> bare state dict, for each official file."""
    states: Dict[str, Dict[str, torch.Tensor]] = {}
    sources: Dict[str, str] = {}
    for path in paths:
        state = strip_official(load_weights_file(path, 'official checkpoint'), path)
        role = official_role(state, path)
        if role in states:
            raise InputError(f'{path} and {sources[role]} are both {role}')
        states[role], sources[role] = state, path
    if 'net_g' not in states:
        raise InputError('no net_g (Transformer) among the inputs: ' + ', '.join(paths))
    return states


def convert(states: Dict[str, Dict[str, torch.Tensor]], model: torch.nn.Module
            ) -> Dict[str, torch.Tensor]:
    """The editor state dict for the given official networks, checked against ``model``."""
    reference = model.state_dict()
    converted: Dict[str, torch.Tensor] = {}
    problems = []
    for role, state in states.items():
        prefix = EDITOR_PREFIX[role]
        expected = {k[len(prefix):]: v for k, v in reference.items() if k.startswith(prefix)}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
                  for k in sorted(set(state) & set(expected))
                  if state[k].shape != expected[k].shape]
        for name, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                           ('shape mismatches', shapes)):
            if keys:
                problems.append(f'{role} {name} ({len(keys)}): ' + '; '.join(keys[:8]) +
                                (' ...' if len(keys) > 8 else ''))
        converted.update({prefix + k: v for k, v in state.items()})
    if problems:
        raise InputError('the official files do not match the model config:\n  ' +
                         '\n  '.join(problems))
    return converted


def official_record(variant: str, roles: List[str]) -> dict:
    """``{hidiff_stage, hidiff_diffusion}`` of the official networks ``roles`` of ``variant``."""
    from mmagic.registry import DIFFUSION_SCHEDULERS
    from mmengine.config import Config
    scheduler_cfg = Config.fromfile(DEFAULT_CONFIGS[variant]).model.prior_head.scheduler
    return {STAGE_KEY: 2 if 'net_le_dm' in roles else 1,
            DIFFUSION_KEY: DIFFUSION_SCHEDULERS.build(scheduler_cfg).settings()}


def build_model(config: str) -> torch.nn.Module:
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    with user_input(f'config {config}'):
        cfg = Config.fromfile(config)
    return MODELS.build(cfg.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('files', nargs='+', help='official net_*.pth files')
    parser.add_argument('--out', required=True, help='output MMEngine checkpoint')
    parser.add_argument('--config', help='model config to check against (default: by layout)')
    args = parser.parse_args()

    states = load_official(args.files)
    variant = official_variant(states)
    config = args.config or DEFAULT_CONFIGS[variant]
    state_dict = convert(states, build_model(config))
    meta = dict(hidiff_mm=dict(variant=variant, networks=sorted(states), config=config,
                               source_files=[osp.abspath(p) for p in args.files]),
                **official_record(variant, sorted(states)))
    atomic_torch_save(dict(meta=meta, state_dict=state_dict), args.out)
    print(f'{variant} networks {", ".join(sorted(states))} -> {args.out} '
          f'({len(state_dict)} tensors)')


if __name__ == '__main__':
    run(main)
