"""The reverse-step rules of ``HIDiffScheduler``, chosen by name in its ``sampler`` option."""
import inspect
from typing import Union

from ....utils.errors import ConfigError
from .base import Sampler
from .ddim import DDIMSampler
from .dpm_solver import DPMSolverPPSampler
from .posterior_mean import PosteriorMeanSampler

SAMPLERS = {cls.name: cls for cls in (PosteriorMeanSampler, DDIMSampler, DPMSolverPPSampler)}


def build_sampler(cfg: Union[str, dict], schedule) -> Sampler:
    """A sampler from ``'name'`` or ``dict(type='name', **options)`` for ``schedule``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones), or an option that the
            named sampler does not take (the message lists the ones it takes).
    """
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop('type', None)
    if name not in SAMPLERS:
        raise ConfigError(f'sampler type must be one of {list(SAMPLERS)}, got {name!r}')
    cls = SAMPLERS[name]
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p not in ('self', 'schedule')]
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise ConfigError(f'sampler {name!r} takes the option(s) {accepted}, got unknown '
                          f'option(s) {unknown}')
    return cls(schedule, **cfg)


__all__ = ['Sampler', 'SAMPLERS', 'build_sampler', 'PosteriorMeanSampler', 'DDIMSampler',
           'DPMSolverPPSampler']
