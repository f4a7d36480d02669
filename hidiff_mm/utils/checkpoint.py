"""Checking that a checkpoint fits a model before anything is loaded into it."""
from typing import Any, Dict, Sequence

import torch
from mmengine.runner.checkpoint import get_state_dict

from .io import CheckpointError


def state_dict_of(checkpoint: Any, path: str) -> Dict[str, torch.Tensor]:
    """The weights of an MMEngine checkpoint (``{'state_dict': ...}``) or a bare state dict,
    without the ``module.`` prefix of wrapped models."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f'{path} is not a state dict or an MMEngine checkpoint '
                              '(expected tensors under "state_dict")')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def check_fits(model: torch.nn.Module, state: Dict[str, torch.Tensor], path: str,
               allow_missing: bool = False, optional: Sequence[str] = ()) -> None:
    """Raise ``CheckpointError`` unless the weights ``state`` (read from ``path``) fit ``model``
    (which may be wrapped, e.g. in DDP or in MMSeparateDistributedDataParallel).

    A weight of another shape never fits, and at least one weight must be shared. A weight of the
    model missing from ``state`` is an error unless ``allow_missing`` (a partial initialisation)
    or its name starts with one of ``optional``. Weights the model does not have are ignored.
    """
    expected = get_state_dict(model)  # without the `module.` of (nested) model wrappers
    shared = state.keys() & expected.keys()
    shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
              for k in sorted(shared) if state[k].shape != expected[k].shape]
    missing = [] if allow_missing else [
        k for k in expected if k not in state and not k.startswith(tuple(optional))]
    problems = []
    if not shared:
        problems.append(f'none of its {len(state)} weights belongs to the model '
                        f'(file: {sorted(state)[:3]}, model: {sorted(expected)[:3]})')
    if shapes:
        problems.append(f'{len(shapes)} weights differ in shape, e.g. {"; ".join(shapes[:3])}')
    if missing and shared:
        problems.append(f'{len(missing)} weights of the model are missing, e.g. {missing[:3]}')
    if problems:
        raise CheckpointError(f'checkpoint {path} does not fit the model of the config: '
                              f'{"; ".join(problems)}. Is it a checkpoint of this config?')
