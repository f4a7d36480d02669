"""The HI-Diff editor: stage-1 / stage-2 training and blind prediction."""
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmagic.models import BaseEditModel
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.logging import MessageHub, MMLogger

from ...utils.errors import ConfigError, InputError
from ...utils.io import load_weights_file
from .prediction import BlindPrediction


@MODELS.register_module()
class HIDiff(BlindPrediction, BaseEditModel):
    """HI-Diff: a prior-guided deblurring Transformer plus the latent prior that guides it.

    ``stage`` selects what a training step does:

    * 1: ``z = E1([sharp, blur])``; loss = pixel(G(blur, z), sharp). G and E1 train.
    * 2: ``z = E1(...)`` under no_grad (E1 frozen); ``z_hat`` = the T-step chain from
      ``add_noise(z, eps)`` conditioned on ``E2(blur)``, with gradients; loss =
      pixel(G(blur, z_hat), sharp) + prior(z_hat, z). G, E2 and the denoiser train.

    Prediction is blind and has one path, :meth:`forward_tensor`, used by validation,
    ``tools/test.py``, the API and ``tools/demo.py``: the image is padded to ``pad_multiple``
    (:meth:`pad`), the prior is sampled from ``z_T ~ N(0, I)`` (the only random draw), G runs
    (on tiles, with that one prior, if asked) and its output is cropped back; optionally averaged
    over the 8 dihedral transforms. ``test_cfg`` holds these options (``steps``, ``tile``,
    ``tile_overlap``, ``self_ensemble``, ``seed``: :class:`PredictionOptions`).

    The ground truth is read only when asked for by name: with ``oracle_prior=True`` (default
    False) validation and test predict with the prior of ``E1([sharp, blur])`` wherever the data
    samples carry the sharp image, in any stage: an optimistic, oracle score (the official
    stage-1 validation; ``configs/hidiff/hidiff_s1_*.py`` ask for it), and the log says so at
    its first use in each validation or test run. Otherwise, and always without a sharp image,
    prediction is blind. The stage only selects what a training step trains; "training stage N"
    is logged when a training step of stage N first runs, not when a model is built.

    ``init_from_stage1`` starts a stage-2 run as the official one does: the Transformer and the
    stage-1 encoder are loaded, strictly, from the stage-1 checkpoint when the runner initialises
    the weights (``init_weights``); the stage-2 encoder and the denoiser keep their fresh init.

    Args:
        generator: config of the Transformer (``HIDiffTransformer``).
        prior_head: config of the ``LatentPriorHead``.
        pixel_loss: image loss config (official: L1, weight 1).
        prior_loss: stage-2 prior loss config (official: L1, weight 1).
        stage: 1 or 2.
        oracle_prior: predict with the stage-1 encoder's prior of the sharp image where the
            data carry it (validation, test); see above.
        oracle_val_prior: the former name of ``oracle_prior`` (whose default was True); any
            value is refused with a message naming the new option.
        pad_multiple: prediction pads H and W up to a multiple of this.
        init_from_stage1: path of a stage-1 checkpoint, or None.
        test_cfg: the prediction options (:class:`PredictionOptions`), e.g.
            ``dict(tile=512, tile_overlap=32, steps=4, self_ensemble=False)``.
    """

    def __init__(self,
                 generator: dict,
                 prior_head: dict,
                 pixel_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 prior_loss: dict = dict(type='L1Loss', loss_weight=1.0),
                 stage: int = 1,
                 oracle_prior: bool = False,
                 oracle_val_prior: Optional[bool] = None,
                 pad_multiple: int = 8,
                 init_from_stage1: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(generator, pixel_loss, train_cfg, test_cfg, init_cfg, data_preprocessor)
        self.prior_head = MODELS.build(prior_head)
        self.prior_loss = MODELS.build(prior_loss)
        if oracle_val_prior is not None:
            raise ConfigError(
                f'model.oracle_val_prior={oracle_val_prior!r}: renamed model.oracle_prior, '
                'which defaults to False (validation and test blind); set '
                'model.oracle_prior=True to score with the stage-1 encoder on the sharp image')
        if not isinstance(oracle_prior, bool):
            raise ConfigError(f'model.oracle_prior must be True or False, got {oracle_prior!r}')
        self.oracle_prior = oracle_prior
        self.pad_multiple = pad_multiple
        self.init_from_stage1 = init_from_stage1
        self.stage = 0
        self.set_stage(stage)
        self._announced = dict(stage=None, oracle=False)
        self.prediction_options()  # a bad test_cfg is a ConfigError at construction

    def init_weights(self) -> None:
        """MMEngine's initialisation, then the stage-1 weights if ``init_from_stage1`` is set."""
        super().init_weights()
        if self.init_from_stage1 is not None:
            self.load_stage1(self.init_from_stage1)

    def load_stage1(self, path: str) -> None:
        """Load ``generator.*`` and ``prior_head.encoder_s1.*`` of a stage-1 checkpoint, strictly.

        Raises:
            FileNotFoundError: no file at ``path``.
            CheckpointError: the file is damaged, or asks to build objects (refused).
            KeyError: the file has no ``state_dict``, or its keys for the two networks differ
                from the model's (the message names the missing and unexpected keys).
        """
        if not osp.isfile(path):
            raise FileNotFoundError(f'model.init_from_stage1: no stage-1 checkpoint at {path!r}')
        checkpoint = load_weights_file(path, 'model.init_from_stage1 (stage-1 checkpoint)')
        state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise InputError(f'model.init_from_stage1: {path!r} is not an MMEngine checkpoint '
                             "(expected a dict with a 'state_dict')")
        for prefix, module in (('generator.', self.generator),
                               ('prior_head.encoder_s1.', self.prior_head.encoder_s1)):
            part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            expected = set(module.state_dict())
            missing, unexpected = sorted(expected - set(part)), sorted(set(part) - expected)
            if missing or unexpected:
                raise InputError(
                    f'model.init_from_stage1: {path!r} does not match {prefix}* of this '
                    f'model: {len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} '
                    f'unexpected key(s) {unexpected[:5]}')
            module.load_state_dict(part, strict=True)
        MMLogger.get_current_instance().info(
            f'HIDiff: Transformer and stage-1 encoder initialised from {path}')

    def set_stage(self, stage: int) -> None:
        """Select the training stage and mark exactly its networks trainable."""
        if stage not in (1, 2):
            raise ConfigError(f'stage must be 1 or 2, got {stage!r}')
        head = self.prior_head
        trainable = {
            1: [self.generator, head.encoder_s1],
            2: [self.generator, head.encoder_s2, head.denoiser],
        }[stage]
        if head.encoder_s1 is None:
            raise ConfigError('HIDiff needs a prior_head with a stage-1 encoder (encoder_s1)')
        for module in (self.generator, head.encoder_s1, head.encoder_s2, head.denoiser):
            module.requires_grad_(any(module is m for m in trainable))
        self.stage = stage

    def _announce_stage(self) -> None:
        """Log "training stage N" the first time a training step of stage N runs."""
        if self._announced['stage'] != self.stage:
            MMLogger.get_current_instance().info(f'HIDiff: training stage {self.stage}')
            self._announced['stage'] = self.stage

    def forward_train(self,
                      inputs: torch.Tensor,
                      data_samples: Optional[DataSample] = None,
                      **kwargs) -> Dict[str, torch.Tensor]:
        """inputs: blurry (B, 3, h, w); data_samples.gt_img: sharp, same range -> losses."""
        self._announce_stage()
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

    def train(self, mode: bool = True) -> 'HIDiff':
        """``nn.Module.train``; each validation or test run (which calls ``eval()``) logs its
        use of the oracle prior again."""
        self._announced['oracle'] = False
        return super().train(mode)

    def _oracle_sharp(self, data_samples: Optional[DataSample]) -> Optional[torch.Tensor]:
        """The sharp image as model input when ``oracle_prior=True`` and ``data_samples`` carry
        one (MMagic packs it BGR in [0, 255]), else None (blind). Logged at its first use in
        each validation or test run."""
        if not self.oracle_prior or data_samples is None or 'gt_img' not in data_samples:
            return None
        if not self._announced['oracle']:
            MMLogger.get_current_instance().warning(
                'HIDiff: predicting with the ORACLE prior (the stage-1 encoder on the sharp '
                'image, model.oracle_prior=True): these scores read the ground truth and are '
                'not blind deblurring results')
            self._announced['oracle'] = True
        gt = data_samples.gt_img.to(self.data_preprocessor.mean.device)
        order = data_samples.metainfo.get('gt_img_output_channel_order', 'BGR')
        if isinstance(order, List):
            order = order[0]
        if order == 'BGR':
            gt = gt.flip(1)
        return (gt - self.data_preprocessor.mean) / self.data_preprocessor.std
