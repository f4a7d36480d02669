# Copyright (c) hidiff_mm contributors. All rights reserved.
"""How the HI-Diff editors predict: the options of their ``test_cfg``, the padding and the
blind prediction path they share."""
import logging
from dataclasses import dataclass, fields, replace
from typing import Collection, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmagic.structures import DataSample
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from torch import nn

from hidiff_mm.utils.dihedral import dihedral, dihedral_inverse
from hidiff_mm.utils.errors import ConfigError, InputError
from ..latent.scheduler import inference_steps_problem
from ..layers.bf16 import PRECISIONS, Bf16Copy, bf16_description, bf16_unsupported_reason
from .tiling import tile_problem, tiled_apply


@dataclass(frozen=True)
class PredictionOptions:
    """The prediction options of ``HIDiff`` (its ``test_cfg``; the API and ``tools/demo.py``
    override them per call).

    Args:
        steps: sampler steps, an evenly spaced subset of the T trained ones; None: all T.
        tile: run the Transformer on ``tile x tile`` windows (a multiple of the model's
            ``pad_multiple``) with one prior sampled from the whole image; None: whole image.
        tile_overlap: overlap of neighbouring tiles in pixels (blended with linear ramps).
        self_ensemble: average the predictions of the 8 dihedral transforms of the input (each
            samples its own prior: 8 draws of ``z_T``).
        precision: ``'fp32'``, or ``'bf16'``: the Transformer runs on a bf16 copy of its
            weights, with fp32 accumulation and statistics
            (:mod:`~hidiff_mm.models.layers.bf16`); on a device without bf16 units the
            prediction runs fp32 and logs why, once.
        seed: draw ``z_T`` of every prediction call from a ``torch.Generator`` seeded with it
            (unless the caller passes a generator), so a test run with batches of one image
            gives each image what ``deblur(image, seed=seed)`` gives it, whatever the order;
            None: torch's global RNG.
    """

    steps: Optional[int] = None
    tile: Optional[int] = None
    tile_overlap: int = 32
    self_ensemble: bool = False
    precision: str = 'fp32'
    seed: Optional[int] = None

    @classmethod
    def from_cfg(cls, test_cfg: Optional[dict], **overrides) -> 'PredictionOptions':
        """Options from ``test_cfg`` (an unknown key is a ``ConfigError``), then the
        ``overrides`` that are not None (an unknown one is the caller's ``TypeError``)."""
        names = [f.name for f in fields(cls)]
        given = dict(test_cfg or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f'model.test_cfg: unknown key(s) {unknown}; valid keys: {names}')
        bad = sorted(set(overrides) - set(names))
        if bad:
            raise TypeError(f'unknown prediction option(s) {bad}; valid options: {names}')
        return replace(cls(**given), **{k: v for k, v in overrides.items() if v is not None})

    def check(self, num_train_timesteps: int, pad_multiple: int,
              given: Collection[str] = ()) -> 'PredictionOptions':
        """Raise, naming the first option that a model with T steps and this ``pad_multiple``
        cannot use: an ``InputError`` for an option in ``given`` (the call's or the tool's
        arguments), a ``ConfigError`` for one of ``model.test_cfg``; return ``self``."""
        for name, problem in self._problems(num_train_timesteps, pad_multiple):
            if name in given:
                raise InputError(problem)
            raise ConfigError(f'model.test_cfg: {problem}')
        return self

    def _problems(self, num_train_timesteps: int,
                  pad_multiple: int) -> Iterator[Tuple[str, str]]:
        """``(option, what is wrong)`` for each option that cannot be used."""
        if self.steps is not None:
            problem = inference_steps_problem(self.steps, num_train_timesteps)
            if problem:
                yield 'steps', problem
        if self.tile is not None:
            problem = tile_problem(self.tile, self.tile_overlap, pad_multiple)
            if problem:
                yield 'tile' if problem[0] == 'tile' else 'tile_overlap', problem[1]
        if not isinstance(self.self_ensemble, bool):
            yield 'self_ensemble', ('self_ensemble must be True or False, got '
                                    f'{self.self_ensemble!r}')
        if self.precision not in PRECISIONS:
            yield 'precision', (f'precision must be one of {list(PRECISIONS)}, got '
                                f'{self.precision!r}')
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            yield 'seed', f'seed must be a non-negative integer or None, got {self.seed!r}'


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``(B, C, H, W)`` so that H and W are multiples of ``multiple``.

    Reflect padding (the official ``test()``) where the image is large enough for it, i.e.
    where the padding is shorter than the side. A side too short for that (e.g. 3 pixels padded
    to 8, or a single pixel) is reflected as far as it goes and then continued by repeating its
    last row/column (replicate padding), so images of any size from 1x1 up can be predicted.
    """
    if multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple}')
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f'cannot pad an empty image of size {w}x{h} (WxH)')
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    if reflect_h or reflect_w:
        x = F.pad(x, (0, reflect_w, 0, reflect_h), 'reflect')
    if pad_h > reflect_h or pad_w > reflect_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), 'replicate')
    return x


class BlindPrediction:
    """The prediction path of the HI-Diff editors (``HIDiff``, ``HIDiffGAN``), written once.

    The editor provides ``generator`` (the Transformer), ``prior_head`` (``LatentPriorHead``),
    ``pad_multiple``, ``test_cfg`` and ``data_preprocessor``; it may override
    :meth:`blind_prior` (e.g. without gradients) and :meth:`_oracle_sharp` (an oracle prior for
    validation).
    """

    def prediction_options(self, **overrides) -> PredictionOptions:
        """``test_cfg`` with ``overrides`` (those not None), checked against this model: a bad
        value is a ``ConfigError`` where ``test_cfg`` gave it, an ``InputError`` where the call
        did."""
        head = self.prior_head  # a per-network DDP wrapper (HIDiffGAN) holds it as .module
        scheduler = (head.module if is_model_wrapper(head) else head).scheduler
        given = [name for name, value in overrides.items() if value is not None]
        return PredictionOptions.from_cfg(self.test_cfg, **overrides).check(
            len(scheduler), self.pad_multiple, given)

    def pad(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> padded at the bottom/right to multiples of ``pad_multiple``
        (:func:`pad_to_multiple`: reflect, then edge repetition where reflection cannot reach)."""
        return pad_to_multiple(inputs, self.pad_multiple)

    def forward_tensor(self,
                       inputs: torch.Tensor,
                       data_samples: Optional[DataSample] = None,
                       generator: Optional[torch.Generator] = None,
                       return_intermediates: bool = False,
                       **options) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Prediction. inputs: (B, 3, H, W) in the model's range -> (B, 3, H, W).

        ``generator`` draws ``z_T`` (else one seeded with the ``seed`` option, else torch's
        global RNG); ``options`` override ``test_cfg`` for this call (see
        :class:`PredictionOptions`). With ``return_intermediates`` also the
        prediction guided by each prior of the chain ``[z_T, ..., z_0]``, a list of
        (B, 3, H, W) made exactly as the prediction is (padding, tiles, self-ensemble), whose
        last entry is the prediction itself. With ``oracle_prior=True`` and a sharp image in
        ``data_samples``, the prior is encoded from it (:meth:`_oracle_sharp`; one entry).
        """
        opts = self.prediction_options(**options)
        if generator is None and opts.seed is not None:
            generator = torch.Generator(device=inputs.device).manual_seed(opts.seed)
        sharp = self._oracle_sharp(data_samples)
        if not opts.self_ensemble:
            frames = self._predict(inputs, sharp, generator, opts, return_intermediates)
        else:
            frames = None
            for flag in range(8):
                flip = None if sharp is None else dihedral(sharp, flag)
                preds = [dihedral_inverse(p, flag) for p in self._predict(
                    dihedral(inputs, flag), flip, generator, opts, return_intermediates)]
                frames = preds if frames is None else [f + p for f, p in zip(frames, preds)]
            frames = [f / 8 for f in frames]
        return (frames[-1], frames) if return_intermediates else frames[-1]

    def blind_prior(self, padded: torch.Tensor,
                    generator: Optional[torch.Generator] = None,
                    steps: Optional[int] = None,
                    return_intermediates: bool = False):
        """The prior sampled from the (padded) blurry image alone, (B, N, C') (and the chain
        ``[z_T, ..., z_0]`` with ``return_intermediates``)."""
        return self.prior_head(padded, generator=generator, num_inference_steps=steps,
                               return_intermediates=return_intermediates)

    def _predict(self, inputs: torch.Tensor, sharp: Optional[torch.Tensor],
                 generator: Optional[torch.Generator], opts: PredictionOptions,
                 intermediates: bool) -> List[torch.Tensor]:
        """One (untransformed) prediction, guided by the prior (or by each prior of its chain
        with ``intermediates``): a list of (B, 3, H, W), the prediction last."""
        h, w = inputs.shape[-2:]
        padded = self.pad(inputs)
        if sharp is not None:
            priors = [self.prior_head.encode(padded, self.pad(sharp))]
        elif intermediates:
            priors = self.blind_prior(padded, generator, opts.steps, return_intermediates=True)[1]
        else:
            priors = [self.blind_prior(padded, generator, opts.steps)]
        return [self._restore(padded, prior, opts)[..., :h, :w] for prior in priors]

    def _restore(self, padded: torch.Tensor, prior: torch.Tensor,
                 opts: PredictionOptions) -> torch.Tensor:
        """The Transformer (in ``opts.precision``) on the padded image (B, 3, H', W') with
        ``prior``, on tiles if asked."""
        network = self.generator_for(opts.precision, padded.device)
        if opts.tile is None:
            return network(padded, prior)
        return tiled_apply(lambda tile: network(tile, prior), padded, opts.tile,
                           opts.tile_overlap, self.pad_multiple)

    def generator_for(self, precision: str, device: torch.device) -> nn.Module:
        """The Transformer that a prediction in ``precision`` runs on ``device``: the generator
        itself for fp32 (and for bf16 where ``device`` cannot run it: logged once), else its bf16
        copy, converted once and again only after the weights change (logged once)."""
        if precision == 'fp32':
            return self.generator
        reason = bf16_unsupported_reason(device)
        said = self.__dict__.setdefault('_precision_logged', set())
        line = (f'HIDiff: precision=bf16 asked for, but {reason}; predicting in fp32'
                if reason else f'HIDiff: bf16 prediction ({bf16_description(device)}): the '
                'Transformer runs on bf16 weights converted once, with fp32 accumulation, '
                'statistics (layer norm, softmax, attention) and global residual')
        if line not in said:
            said.add(line)
            MMLogger.get_current_instance().log(logging.WARNING if reason else logging.INFO,
                                                line)
        if reason:
            return self.generator
        return self.__dict__.setdefault('_bf16_generator', Bf16Copy()).get(self.generator)

    def _oracle_sharp(self, data_samples: Optional[DataSample]) -> Optional[torch.Tensor]:
        """The sharp image to take the prior from instead of sampling it, or None (blind)."""
        return None

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
