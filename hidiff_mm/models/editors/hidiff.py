"""The HI-Diff editor: stage-1 / stage-2 training and blind prediction."""
from typing import Dict, List, Optional

import torch
from mmagic.models import BaseEditModel
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.logging import MessageHub, MMLogger

from ..layers.padding import pad_to_multiple


@MODELS.register_module()
class HIDiff(BaseEditModel):
    """HI-Diff: a prior-guided deblurring Transformer plus the latent prior that guides it.

    ``stage`` selects what a training step does:

    * 1: ``z = E1([sharp, blur])``; loss = pixel(G(blur, z), sharp). G and E1 train.
    * 2: ``z = E1(...)`` under no_grad (E1 frozen); ``z_hat`` = the T-step chain from
      ``add_noise(z, eps)`` conditioned on ``E2(blur)``, with gradients; loss =
      pixel(G(blur, z_hat), sharp) + prior(z_hat, z). G, E2 and the denoiser train.

    Prediction is blind: the image is padded to ``pad_multiple`` (reflect, see
    :func:`~hidiff_mm.models.layers.pad_to_multiple`), the prior is sampled
    from ``z_T ~ N(0, I)`` (the only random draw), and G's output is cropped back. With
    ``oracle_val_prior=True`` a stage-1 model instead validates with the prior of
    ``E1([sharp, blur])`` (the official stage-1 validation; optimistic, off by default).

    Args:
        generator: config of the Transformer (``HIDiffTransformer``).
        prior_head: config of the ``LatentPriorHead``.
        pixel_loss: image loss config (official: L1, weight 1).
        prior_loss: stage-2 prior loss config (official: L1, weight 1).
        stage: 1 or 2.
        oracle_val_prior: see above.
        pad_multiple: prediction pads H and W up to a multiple of this.
    """

    def __init__(self,
                 generator: dict,
                 prior_head: dict,
                 pixel_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 prior_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 stage: int = 1,
                 oracle_val_prior: bool = False,
                 pad_multiple: int = 8,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(generator, pixel_loss, train_cfg, test_cfg, init_cfg, data_preprocessor)
        self.prior_head = MODELS.build(prior_head)
        self.prior_loss = MODELS.build(prior_loss)
        self.oracle_val_prior = oracle_val_prior
        self.pad_multiple = pad_multiple
        self.stage = 0
        self.set_stage(stage)

    def set_stage(self, stage: int) -> None:
        """Select the training stage and mark exactly its networks trainable."""
        if stage not in (1, 2):
            raise ValueError(f'stage must be 1 or 2, got {stage!r}')
        head = self.prior_head
        trainable = {
            1: [self.generator, head.encoder_s1],
            2: [self.generator, head.encoder_s2, head.denoiser],
        }[stage]
        if head.encoder_s1 is None:
            raise ValueError('HIDiff needs a prior_head with a stage-1 encoder (encoder_s1)')
        for module in (self.generator, head.encoder_s1, head.encoder_s2, head.denoiser):
            module.requires_grad_(any(module is m for m in trainable))
        if stage != self.stage:
            MMLogger.get_current_instance().info(f'HIDiff: training stage {stage}')
        self.stage = stage

    def forward_tensor(self,
                       inputs: torch.Tensor,
                       data_samples: Optional[DataSample] = None,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Blind prediction. inputs: (B, 3, H, W) in the model's range -> (B, 3, H, W)."""
        h, w = inputs.shape[-2:]
        padded = pad_to_multiple(inputs, self.pad_multiple)
        if self.oracle_val_prior and self.stage == 1 and data_samples is not None:
            sharp = pad_to_multiple(self._sharp_from_samples(data_samples), self.pad_multiple)
            prior = self.prior_head.encode(padded, sharp)
        else:
            prior = self.blind_prior(padded, generator)
        return self.generator(padded, prior)[..., :h, :w]

    def blind_prior(self, padded: torch.Tensor,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The prior sampled from the (padded) blurry image alone, (B, N, C')."""
        return self.prior_head(padded, generator=generator)

    def forward_inference(self,
                          inputs: torch.Tensor,
                          data_samples: Optional[DataSample] = None,
                          **kwargs) -> DataSample:
        """Prediction as ``pred_img`` plus the blurry input as ``input_img`` (both BGR, [0, 255]),
        so metrics can score the input too (e.g. ``PSNR(pred_key='input_img')``)."""
        feats = self.data_preprocessor.destruct(self.forward_tensor(inputs, data_samples),
                                                data_samples)
        blurry = self.data_preprocessor.destruct(inputs, data_samples)
        return DataSample(pred_img=feats.cpu(), input_img=blurry.cpu())

    def forward_train(self,
                      inputs: torch.Tensor,
                      data_samples: Optional[DataSample] = None,
                      **kwargs) -> Dict[str, torch.Tensor]:
        """inputs: blurry (B, 3, h, w); data_samples.gt_img: sharp, same range -> losses."""
        sharp = data_samples.gt_img
        if self.stage == 1:
            prior = self.prior_head.encode(inputs, sharp)
            return dict(loss_pix=self.pixel_loss(self.generator(inputs, prior), sharp))
        with torch.no_grad():
            target = self.prior_head.encode(inputs, sharp)
        prior = self.prior_head(inputs, z_start=target)
        return dict(
            loss_pix=self.pixel_loss(self.generator(inputs, prior), sharp),
            loss_prior=self.prior_loss(prior, target))

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """Sum the losses; a non-finite total stops training before any weight changes."""
        loss, log_vars = super().parse_losses(losses)
        if not torch.isfinite(loss):
            iteration = MessageHub.get_current_instance().get_info('iter')
            values = {k: float(v.detach()) for k, v in log_vars.items()}
            raise FloatingPointError(
                f'HIDiff: non-finite loss at iteration {iteration} (stage {self.stage}): '
                f'{values}; stopped before the update, the weights are unchanged')
        return loss, log_vars

    def _sharp_from_samples(self, data_samples: DataSample) -> torch.Tensor:
        """The validation GT as model input: undo MMagic's BGR [0, 255] packing for metrics."""
        gt = data_samples.gt_img.to(self.data_preprocessor.mean.device)
        order = data_samples.metainfo.get('gt_img_output_channel_order', 'BGR')
        if isinstance(order, List):
            order = order[0]
        if order == 'BGR':
            gt = gt.flip(1)
        return (gt - self.data_preprocessor.mean) / self.data_preprocessor.std
