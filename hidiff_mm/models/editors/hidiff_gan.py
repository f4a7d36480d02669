# Copyright (c) hidiff_mm contributors. All rights reserved.
"""HI-Diff-PE: perceptual + adversarial fine-tuning of a trained HI-Diff (SRGAN/ESRGAN pattern)."""
from typing import Dict, Optional

import torch
from mmagic.models.utils import set_requires_grad
from mmagic.registry import MODELS
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict

from .hidiff import HIDiff


@MODELS.register_module()
class HIDiffGAN(HIDiff):
    """HI-Diff-PE: fine-tune HI-Diff's blind inference path with L1 + VGG + adversarial losses.

    The "generator" of the GAN is HI-Diff's whole blind path (what ``forward_tensor`` does at
    test time): ``z_T ~ N(0, I)``, the T-step denoising chain conditioned on ``E2(blur)``, then
    the Transformer, all with gradients. It is trained with
    ``L1(G(blur), sharp) + lambda * L_VGG + eta * L_G`` (the weights live in the loss configs)
    and the discriminator alternately with the vanilla GAN loss, as MMagic's ``SRGAN``: one
    optimizer per network in an ``OptimWrapperDict`` (keys ``generator`` and
    ``discriminator``). Distributed training needs
    ``model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')`` (MMEngine's default
    DDP wrapper bypasses this ``train_step``).

    Attribute names are HIDiff's (``generator``, ``prior_head``) plus ``discriminator``, so a
    HIDiff checkpoint loads with ``load_from`` (only ``discriminator.*`` is new; the VGG of the
    perceptual loss is not part of the state dict) and a fine-tuned checkpoint loads back into
    ``HIDiff`` for testing.

    Trainable: the Transformer always; the stage-2 encoder and the denoiser when
    ``finetune_prior=True`` (default: the whole inference path, as "fine-tune HI-Diff" reads);
    with False they are frozen and the prior chain runs without gradients. The stage-1 encoder is
    never used and stays frozen (it is kept so checkpoints remain complete HIDiff checkpoints).

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
        stage: must be 2 (accepted so that HIDiff model configs can be inherited).
        prior_loss, oracle_val_prior: accepted for the same reason; the prior loss is not part
            of the HI-Diff-PE objective and validation is always blind.
        pad_multiple: prediction pads H and W up to a multiple of this.
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
                 stage: int = 2,
                 prior_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 oracle_val_prior: bool = False,
                 pad_multiple: int = 8,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        if stage != 2:
            raise ValueError(f'HIDiffGAN fine-tunes the blind (stage-2) path of a trained '
                             f'HI-Diff: set model.stage=2, got {stage!r}')
        if oracle_val_prior:
            raise ValueError('HIDiffGAN validates blind; oracle_val_prior must be False')
        super().__init__(generator, prior_head, pixel_loss=pixel_loss, prior_loss=prior_loss,
                         stage=2, oracle_val_prior=False, pad_multiple=pad_multiple,
                         train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg,
                         data_preprocessor=data_preprocessor)
        self.discriminator = MODELS.build(discriminator)
        self.gan_loss = MODELS.build(gan_loss)
        self.perceptual_loss = MODELS.build(perceptual_loss) if perceptual_loss else None
        cfg = self.train_cfg or {}
        self.disc_steps = cfg.get('disc_steps', 1)
        self.disc_init_steps = cfg.get('disc_init_steps', 0)
        self.disc_repeat = cfg.get('disc_repeat', 1)
        self.register_buffer('step_counter', torch.tensor(0), persistent=False)
        self.finetune_prior = finetune_prior
        self.set_stage(2)

    def set_stage(self, stage: int) -> None:
        """Only stage 2 exists here: Transformer (+ E2 and denoiser if ``finetune_prior``)."""
        if stage != 2:
            raise ValueError(f'HIDiffGAN has only the blind (stage-2) path, got stage {stage!r}')
        super().set_stage(2)
        if not getattr(self, 'finetune_prior', True):
            self.prior_head.encoder_s2.requires_grad_(False)
            self.prior_head.denoiser.requires_grad_(False)

    # ---------------------------------------------------------------- generator (blind path)
    def blind_prior(self, padded: torch.Tensor,
                    generator: Optional[torch.Generator] = None,
                    steps: Optional[int] = None,
                    return_intermediates: bool = False):
        """The sampled prior; without gradients when only the Transformer is fine-tuned."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.finetune_prior):
            return super().blind_prior(padded, generator, steps, return_intermediates)

    def forward_train(self, inputs, data_samples=None, **kwargs):
        raise RuntimeError(
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

    # ---------------------------------------------------------------- training
    def _iteration(self) -> int:
        """The runner's iteration (so resumed runs keep disc_steps phases), else own count."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        return int(self.step_counter) if iteration is None else int(iteration)

    def train_step(self, data, optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """One iteration: a G update (every ``disc_steps``-th iteration after
        ``disc_init_steps``) with D frozen, then ``disc_repeat`` D updates on the detached
        output, with G untouched. Returns the log variables."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or \
                not {'generator', 'discriminator'} <= set(optim_wrapper.keys()):
            raise TypeError(
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
