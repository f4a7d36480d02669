"""One-stage HI-Diff: both encoders, the denoiser and the Transformer trained in one run."""
from typing import Dict, Optional

import torch
from mmagic.registry import MODELS
from mmagic.structures import DataSample

from ...utils.errors import ConfigError
from .hidiff import HIDiff


@MODELS.register_module()
class HIDiffOneStage(HIDiff):
    """HI-Diff trained in one stage, without a stage switch (``stage='joint'``).

    Every training step runs both branches and trains all four networks:

    * oracle: ``z = E1([sharp, blur])`` (with gradients);
    * diffused: ``z_hat`` = the chain from ``add_noise(sg(z), eps)`` conditioned on ``E2(blur)``
      (with gradients), where ``sg`` stops the gradient: the stage-1 prior is the diffusion's
      target, as in stage 2, but keeps learning;
    * the Transformer sees ``(1 - w) * z + w * z_hat``;
    * loss = pixel(G(blur, prior), sharp) + prior(z_hat, sg(z)).

    ``w`` (the diffused weight) moves the Transformer from the oracle prior to the diffused one;
    a :class:`~hidiff_mm.engine.hooks.PriorRampHook` sets it before every iteration from the
    iteration number (so resumed runs continue exactly), or :meth:`set_diffused_weight` by hand.
    Training without it set is refused. All four networks are in the graph at every ``w``
    (weights 0 give zero gradients), so distributed training needs no unused-parameter search.
    Validation and prediction are blind, as a stage-2 model's, unless ``oracle_prior=True``
    (as :class:`HIDiff`); a checkpoint loads into :class:`HIDiff` (same keys) for testing with
    any stage-2 config.

    Args:
        generator / prior_head / pixel_loss / prior_loss / oracle_prior / oracle_val_prior /
            pad_multiple / train_cfg / test_cfg / init_cfg / data_preprocessor: as
            :class:`HIDiff`.
        stage: must be ``'joint'`` (accepted so that HIDiff model configs can be inherited).
    """

    def __init__(self,
                 generator: dict,
                 prior_head: dict,
                 pixel_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 prior_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 stage: str = 'joint',
                 oracle_prior: bool = False,
                 oracle_val_prior: Optional[bool] = None,
                 pad_multiple: int = 8,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(generator, prior_head, pixel_loss=pixel_loss, prior_loss=prior_loss,
                         stage=stage, oracle_prior=oracle_prior,
                         oracle_val_prior=oracle_val_prior, pad_multiple=pad_multiple,
                         train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg,
                         data_preprocessor=data_preprocessor)
        self.diffused_weight: Optional[float] = None

    def set_stage(self, stage: str) -> None:
        """Only ``'joint'``: every network trainable. A stage switch is refused."""
        if stage != 'joint':
            raise ConfigError(f"HIDiffOneStage trains in one stage: stage must be 'joint', got "
                              f'{stage!r} (remove any StageSwitchHook, set model.stage=\'joint\')')
        head = self.prior_head
        if head.encoder_s1 is None:
            raise ConfigError('HIDiffOneStage needs a prior_head with a stage-1 encoder')
        for module in (self.generator, head.encoder_s1, head.encoder_s2, head.denoiser):
            module.requires_grad_(True)
        self.stage = stage

    def set_diffused_weight(self, weight: float) -> None:
        """The share ``w`` in [0, 1] of the diffused prior in the Transformer's input."""
        if isinstance(weight, bool) or not 0 <= weight <= 1:
            raise ConfigError(f'diffused weight must be in [0, 1], got {weight!r}')
        self.diffused_weight = float(weight)

    def forward_train(self,
                      inputs: torch.Tensor,
                      data_samples: Optional[DataSample] = None,
                      **kwargs) -> Dict[str, torch.Tensor]:
        """inputs: blurry (B, 3, h, w); data_samples.gt_img: sharp, same range -> losses."""
        if self.diffused_weight is None:
            raise ConfigError("HIDiffOneStage: the diffused weight is not set; add "
                              "dict(type='PriorRampHook', begin=..., end=...) to custom_hooks "
                              '(or call set_diffused_weight)')
        self._announce_stage()
        sharp = data_samples.gt_img
        oracle = self.prior_head.encode(inputs, sharp)
        target = oracle.detach()
        diffused = self.prior_head(inputs, z_start=target)
        prior = torch.lerp(oracle, diffused, self.diffused_weight)
        return dict(
            loss_pix=self.pixel_loss(self.generator(inputs, prior), sharp),
            loss_prior=self.prior_loss(diffused, target))
