# Copyright (c) hidiff_mm contributors. All rights reserved.
"""HI-Diff-PE: perceptual + adversarial fine-tuning of a trained HI-Diff (SRGAN/ESRGAN pattern)."""
from typing import Dict, Optional, Tuple

import torch
from mmagic.models import BaseEditModel
from mmagic.models.utils import set_requires_grad
from mmagic.registry import MODELS
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict

from ...utils.errors import ConfigError
from .prediction import BlindPrediction


@MODELS.register_module()
class HIDiffGAN(BlindPrediction, BaseEditModel):
    """HI-Diff-PE: HI-Diff's blind path, a discriminator and the L1 + VGG + adversarial losses.

    Built like MMagic's ``SRGAN``: the editor composes its networks and losses instead of
    inheriting another editor. The GAN's generator is HI-Diff's blind inference path, made of
    two networks: the ``LatentPriorHead`` (``z_T ~ N(0, I)``, the T-step chain conditioned on
    ``E2(blur)``) and the Transformer ``G(blur, prior)``. Prediction is HIDiff's blind
    prediction path (:class:`~.prediction.BlindPrediction`, ``test_cfg`` options); training runs
    the same path with gradients and minimises ``L1 + lambda L_VGG + eta L_G`` (the weights live
    in the loss configs), the discriminator trained alternately with the vanilla GAN loss: one
    optimizer per network in an ``OptimWrapperDict`` (keys ``generator`` and
    ``discriminator``). Distributed training needs
    ``model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')``; MMEngine's default
    DDP wrapper calls ``forward(mode='loss')``, which a GAN step cannot be, so that raises.

    The network attributes are HIDiff's (``generator``, ``prior_head``) plus
    ``discriminator``, so a HIDiff checkpoint loads with ``load_from`` (only
    ``discriminator.*`` is new; the VGG of the perceptual loss is not part of the state dict)
    and a fine-tuned checkpoint loads back into ``HIDiff``.

    Trainable: the Transformer always; the stage-2 encoder and the denoiser when
    ``finetune_prior=True`` (default: the whole inference path); with False they are frozen and
    the prior chain runs without gradients. The stage-1 encoder is never used and stays frozen
    (it is kept so that checkpoints remain complete HIDiff checkpoints).

    Args:
        generator: the Transformer config (``HIDiffTransformer``).
        prior_head: the ``LatentPriorHead`` config.
        discriminator: discriminator config (logits out), e.g. ``VGGStyleDiscriminator``.
        gan_loss: MMagic ``GANLoss`` config; its ``loss_weight`` (eta) weights only the
            generator term. Default vanilla (BCE with logits), weight 5e-3 (PE-1).
        pixel_loss: L1 config (weight 1 in both recipes).
        perceptual_loss: ``LocalPerceptualLoss`` config (its ``perceptual_weight`` is lambda),
            or None.
        finetune_prior: also train the stage-2 encoder and denoiser. Default True.
        pad_multiple: prediction pads H and W up to a multiple of this.
        test_cfg: the prediction options (see ``HIDiff``).
        train_cfg: ``disc_steps`` (G updated every k-th iteration, default 1),
            ``disc_init_steps`` (D-only iterations first, default 0), ``disc_repeat`` (D updates
            per iteration, default 1); MMagic SRGAN's keys.
    """

    def __init__(self,
                 generator: dict,
                 prior_head: dict,
                 discriminator: dict,
                 gan_loss: dict = dict(type='GANLoss', gan_type='vanilla', loss_weight=5e-3,
                                       real_label_val=1.0, fake_label_val=0.0),
                 pixel_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 perceptual_loss: Optional[dict] = None,
                 finetune_prior: bool = True,
                 pad_multiple: int = 8,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(generator, pixel_loss, train_cfg, test_cfg, init_cfg, data_preprocessor)
        self.prior_head = MODELS.build(prior_head)
        self.discriminator = MODELS.build(discriminator)
        self.gan_loss = MODELS.build(gan_loss)
        self.perceptual_loss = MODELS.build(perceptual_loss) if perceptual_loss else None
        self.finetune_prior = finetune_prior
        self.pad_multiple = pad_multiple
        cfg = self.train_cfg or {}
        self.disc_steps = cfg.get('disc_steps', 1)
        self.disc_init_steps = cfg.get('disc_init_steps', 0)
        self.disc_repeat = cfg.get('disc_repeat', 1)
        self.register_buffer('step_counter', torch.tensor(0), persistent=False)
        head = self.prior_head
        if head.encoder_s1 is not None:
            head.encoder_s1.requires_grad_(False)
        head.encoder_s2.requires_grad_(finetune_prior)
        head.denoiser.requires_grad_(finetune_prior)
        self.prediction_options()  # a bad test_cfg is a ConfigError at construction

    # ---------------------------------------------------------------- generator (blind path)
    def blind_prior(self, padded: torch.Tensor,
                    generator: Optional[torch.Generator] = None,
                    steps: Optional[int] = None,
                    return_intermediates: bool = False):
        """The sampled prior; without gradients when only the Transformer is fine-tuned."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.finetune_prior):
            return super().blind_prior(padded, generator, steps, return_intermediates)

    def forward_train(self, inputs, data_samples=None, **kwargs):
        """Not a GAN step: MMEngine's default DDP wrapper calls it instead of ``train_step``."""
        raise ConfigError(
            'HIDiffGAN trains through its own train_step (generator and discriminator '
            'alternately); for distributed training set model_wrapper_cfg = '
            "dict(type='MMSeparateDistributedDataParallel'), MMEngine's default DDP wrapper "
            'bypasses train_step')

    # ---------------------------------------------------------------- losses
    def generator_losses(self, fake: torch.Tensor, sharp: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_pix`` (L1), ``loss_perceptual`` (lambda L_VGG), ``loss_style`` (if on),
        ``loss_gan`` (eta * BCE(D(fake), real) = -eta log sigmoid D(fake))."""
        losses = dict(loss_pix=self.pixel_loss(fake, sharp))
        if self.perceptual_loss is not None:
            percep = self.perceptual_loss(fake, sharp)
            percep, style = percep if isinstance(percep, tuple) else (percep, None)
            if percep is not None:
                losses['loss_perceptual'] = percep
            if style is not None:
                losses['loss_style'] = style
        losses['loss_gan'] = self.gan_loss(self.discriminator(fake), target_is_real=True,
                                           is_disc=False)
        return losses

    def discriminator_step(self, fake: torch.Tensor, sharp: torch.Tensor,
                           d_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """One D update: BCE(D(sharp), real) and BCE(D(fake), fake), unweighted, each backward
        on its own batch (BN statistics per batch, as SRGAN/ESRGAN)."""
        log_vars = {}
        for name, images, is_real in (('loss_d_real', sharp, True),
                                      ('loss_d_fake', fake.detach(), False)):
            with d_wrapper.optim_context(self):
                loss = self.gan_loss(self.discriminator(images), target_is_real=is_real,
                                     is_disc=True)
            parsed, log = self.parse_losses({name: loss})
            log_vars[name] = log[name]
            d_wrapper.backward(d_wrapper.scale_loss(parsed))
        if d_wrapper.should_update():
            d_wrapper.step()
            d_wrapper.zero_grad()
        return log_vars

    def parse_losses(self, losses: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Sum the losses; a non-finite total stops training before any weight changes."""
        loss, log_vars = super().parse_losses(losses)
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in log_vars.items()}
            raise FloatingPointError(
                f'HIDiffGAN: non-finite loss at iteration {self._iteration()}: {values}; '
                'stopped before the update, the weights are unchanged')
        return loss, log_vars

    # ---------------------------------------------------------------- training
    def _iteration(self) -> int:
        """The runner's iteration (so resumed runs keep disc_steps phases), else own count."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        return int(self.step_counter) if iteration is None else int(iteration)

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """One iteration: a G update (every ``disc_steps``-th iteration after
        ``disc_init_steps``) with D frozen, then ``disc_repeat`` D updates on the detached
        output, with G untouched. Returns the log variables."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or \
                not {'generator', 'discriminator'} <= set(optim_wrapper.keys()):
            raise ConfigError(
                'HIDiffGAN needs an OptimWrapperDict with keys generator and discriminator: '
                "optim_wrapper = dict(constructor='MultiOptimWrapperConstructor', "
                "generator=dict(modules=['generator', 'prior_head'], ...), "
                "discriminator=dict(modules='discriminator', ...))")
        data = self.data_preprocessor(data, True)
        blur, sharp = data['inputs'], data['data_samples'].gt_img
        step = self._iteration()
        g_wrapper = optim_wrapper['generator']
        log_vars = {}
        if step % self.disc_steps == 0 and step >= self.disc_init_steps:
            with g_wrapper.optim_context(self):
                fake = self.forward_tensor(blur)
                set_requires_grad(self.discriminator, False)
                losses = self.generator_losses(fake, sharp)
            loss, log_g = self.parse_losses(losses)
            g_wrapper.update_params(loss)
            log_g['loss_g'] = log_g.pop('loss')
            log_vars.update(log_g)
        else:
            with torch.no_grad():
                fake = self.forward_tensor(blur)
        set_requires_grad(self.discriminator, True)
        for _ in range(self.disc_repeat):
            log_vars.update(
                self.discriminator_step(fake, sharp, optim_wrapper['discriminator']))
        self.step_counter += 1
        return {k: v.detach() for k, v in log_vars.items()}
