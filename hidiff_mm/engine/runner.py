# Copyright (c) hidiff_mm contributors. All rights reserved.
"""A Runner whose checkpoint loading (``resume``, ``load_from``, ``init_cfg`` pretrained
weights) accepts MMEngine checkpoints under ``torch.load(weights_only=True)``, and
:func:`build_runner`, which the tools use.

MMEngine 0.10.7 loads checkpoints with ``torch.load`` without ``weights_only``; torch >= 2.6
then refuses the ``HistoryBuffer`` and numpy objects of MMEngine's own checkpoints. The runner
loads in two places: ``Runner.load_checkpoint`` (``resume`` and ``load_or_resume`` go through
it) and ``Runner._init_model_weights`` (``model.init_weights()``, where MMEngine's
``PretrainedInit`` and HIDiff's ``init_from_stage1`` load). :class:`CheckpointGlobalsMixin` runs
both inside :func:`hidiff_mm.utils.checkpoint_globals.mmengine_checkpoint_globals`, so the
allow-list holds while the runner loads or initialises weights (its ``after_load_checkpoint``
hooks included) and at no other time. :func:`build_runner` also gives the runner a
:class:`FastPathHook`, so the model runs the form of its blocks that its settings ask for on its
device.
"""
from typing import Any

from mmagic.registry import RUNNERS
from mmengine.config import Config
from mmengine.runner import Runner

from ..utils.checkpoint_globals import mmengine_checkpoint_globals
from ..utils.errors import ConfigError
from .hooks import FastPathHook


class CheckpointGlobalsMixin:
    """Mix into a Runner class: ``load_checkpoint`` and ``_init_model_weights`` run inside
    :func:`mmengine_checkpoint_globals`."""

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        with mmengine_checkpoint_globals():
            return super().load_checkpoint(*args, **kwargs)

    def _init_model_weights(self) -> None:
        with mmengine_checkpoint_globals():
            super()._init_model_weights()


@RUNNERS.register_module()
class WeightsOnlyRunner(CheckpointGlobalsMixin, Runner):
    """MMEngine's ``Runner``, resuming and loading MMEngine checkpoints under
    ``weights_only=True`` (see :class:`CheckpointGlobalsMixin`)."""


def build_runner(cfg: Config) -> Runner:
    """Build the runner of ``cfg``: :class:`WeightsOnlyRunner`, or ``cfg.runner_type`` with
    :class:`CheckpointGlobalsMixin` mixed in when it lacks it; with a :class:`FastPathHook`
    unless the config has one.

    Raises:
        KeyError: ``cfg.runner_type`` names no registered runner.
    """
    runner_type = cfg.get('runner_type', WeightsOnlyRunner)
    runner_cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) else runner_type
    if runner_cls is None:
        raise ConfigError(f'runner_type {runner_type!r} is not a registered runner')
    if not issubclass(runner_cls, CheckpointGlobalsMixin):
        runner_cls = type(runner_cls.__name__, (CheckpointGlobalsMixin, runner_cls), {})
    runner = runner_cls.from_cfg(cfg)
    if not any(isinstance(hook, FastPathHook) for hook in runner.hooks):
        runner.register_hook(FastPathHook())
    return runner
