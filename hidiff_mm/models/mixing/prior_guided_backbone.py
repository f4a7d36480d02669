"""PriorGuidedBackbone: inject HI-Diff's prior into an existing MMagic backbone, unmodified."""
import difflib
from functools import partial
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmagic.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from ...utils.errors import ConfigError
from ..layers.fast_path import FastPathPolicy
from ..layers.prior_pyramid import PriorTokenPool

InsertionPoint = Union[str, dict]


class _Point(NamedTuple):
    """One resolved insertion point."""
    where: str            # 'after' (forward hook on the output) or 'before' (pre-hook, input)
    name: str             # sub-module name inside the wrapped backbone
    key: str              # key of its fusion block in ``hims``
    channels: int         # C of the feature map it fuses into
    scale: Optional[float]  # input size / feature size seen by the probe (None: not probed)
    level: int            # pyramid level: 0 = N tokens, 1 = N/4 tokens, 2 = one token
    num_heads: int


def level_for_scale(scale: float) -> int:
    """HI-Diff's rule: full resolution -> N tokens; 1/2 and 1/4 -> N/4 tokens; 1/8 and below ->
    one token (the levels of ``HIDiffTransformer``: z1, z2, z2, z3)."""
    if scale < 1.5:
        return 0
    return 1 if scale < 6 else 2


@MODELS.register_module()
class PriorGuidedBackbone(FastPathPolicy, BaseModule):
    """Guide an unmodified image-to-image backbone (NAFNet, Restormer, ...) by a HI-Diff prior.

    ``forward(img, prior)`` pools the prior ``(B, N, C')`` into HI-Diff's pyramid (N -> N/4 ->
    1 tokens, the official ``down_1`` / ``down_2``) and runs ``backbone(img)``; forward hooks on
    the named sub-modules pass their output (``insert_after``) or their first input
    (``insert_before``) through a HIM block (cross-attention from every pixel to the prior
    tokens, a residual update) with the pyramid level picked per insertion point. The backbone's
    code and state-dict keys are unchanged (they live under ``backbone.``), so the wrapper is a
    drop-in ``generator`` of the :class:`HIDiff` editor, and both HI-Diff stages train it as
    they train ``HIDiffTransformer``.

    Insertion points are sub-module names of the backbone (``dict(backbone.named_modules())``),
    or dicts ``dict(name=..., level=..., num_heads=..., channels=...)``. The channels and the
    resolution of each point come from one probe forward of a ``probe_size`` x ``probe_size``
    zero image (no grad, eval mode) at construction; ``level`` defaults to
    :func:`level_for_scale` of that resolution. A point given with both ``channels`` and
    ``level`` needs no probe (no probe runs if every point has both).

    With ``zero_init=True`` (default) every HIM's output projection starts at zero: the wrapped
    model then computes exactly the plain backbone's output, so a pretrained backbone starts
    undisturbed and the prior is learnt as a residual. ``init_weights`` re-applies it.

    A state dict of the plain backbone (keys without ``backbone.``, e.g. through ``load_from``
    of a plain NAFNet checkpoint) is moved under ``backbone.`` when loaded
    (``accept_plain_state_dict``); the HIM and pyramid keys are then reported missing.

    Called directly, outside this wrapper's forward, the backbone behaves as the plain one (the
    hooks pass through). The prior is held on the wrapper for the duration of one forward:
    ``nn.DataParallel`` and activation checkpointing that re-runs hooked modules after the
    forward are not supported (MMEngine's DDP is).

    Args:
        backbone: config (or module) of the backbone; it must map one image tensor to one image
            tensor, ``backbone(img)``.
        insert_after: insertion points whose output is fused with the prior.
        insert_before: insertion points whose (first) input is fused with the prior.
        prior_channels: C' of the prior (``4 * embed_dim`` of the latent encoders).
        prior_tokens: N of the prior (``group ** 2``); divisible by 4 if a point uses level 1/2.
        num_heads: attention heads of each HIM unless a point says otherwise.
        fusion: config of the fusion block, built with ``channels``, ``num_heads`` and
            ``prior_channels``; contract ``(x (B, C, H, W), prior (B, n, C')) -> (B, C, H, W)``.
        zero_init: zero the fusion blocks' output projection (``proj``), see above.
        probe_size: side of the probe image; a multiple of the backbone's downsampling factor.
        in_channels: channels of the probe image.
        accept_plain_state_dict: see above.
        fast_path: the form that ``convert_for_device`` gives the modules that have a fast one
            (the HIMs; MMagic's backbones have none), as for ``HIDiffTransformer``: ``'cpu'``
            (default) fast for the CPU, True / False fast / exact everywhere. Built exact.
        init_cfg: MMEngine init config of the wrapper (the backbone keeps its own).
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 insert_after: Sequence[InsertionPoint] = (),
                 insert_before: Sequence[InsertionPoint] = (),
                 prior_channels: int = 256,
                 prior_tokens: int = 16,
                 num_heads: int = 1,
                 fusion: dict = dict(type='HIM', bias=False, norm_type='WithBias'),
                 zero_init: bool = True,
                 probe_size: int = 64,
                 in_channels: int = 3,
                 accept_plain_state_dict: bool = True,
                 fast_path: Union[bool, str] = 'cpu',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.backbone = backbone if isinstance(backbone, nn.Module) else MODELS.build(backbone)
        self.prior_channels = prior_channels
        self.prior_tokens = prior_tokens
        self.zero_init = zero_init
        self.accept_plain_state_dict = accept_plain_state_dict
        self._pyramid: Optional[List[torch.Tensor]] = None

        specs = [('after', p) for p in insert_after] + [('before', p) for p in insert_before]
        if not specs:
            raise ConfigError('PriorGuidedBackbone needs at least one insertion point '
                              '(insert_after / insert_before)')
        specs = [(where, self._parse_point(spec)) for where, spec in specs]
        modules = dict(self.backbone.named_modules())
        self._check_names([spec['name'] for _, spec in specs], modules)
        probed = self._probe(specs, modules, probe_size, in_channels)

        self.points: Dict[str, _Point] = {}
        self.hims = nn.ModuleDict()
        for (where, spec), shape in zip(specs, probed):
            key = spec['name'].replace('.', '_')
            key = key if where == 'after' else f'before_{key}'
            if key in self.points:
                raise ConfigError(f'insertion point {where} {spec["name"]!r} is given twice '
                                  f'(or collides with another one as fusion key {key!r})')
            channels = spec.get('channels') or shape[0]
            scale = None if shape is None else shape[1]
            level = spec.get('level')
            level = level_for_scale(scale) if level is None else level
            if level not in (0, 1, 2):
                raise ConfigError(f'level of {spec["name"]!r} must be 0 (N tokens), 1 (N/4) or '
                                  f'2 (one token), got {level!r}')
            heads = spec.get('num_heads', num_heads)
            self.points[key] = _Point(where, spec['name'], key, channels, scale, level, heads)
            self.hims[key] = MODELS.build(dict(fusion, channels=channels, num_heads=heads,
                                               prior_channels=prior_channels))

        max_level = max(p.level for p in self.points.values())
        if max_level and prior_tokens % 4:
            raise ConfigError(f'prior_tokens must be divisible by 4 for pyramid levels 1 and 2, '
                              f'got {prior_tokens}')
        self.down_1 = (PriorTokenPool(prior_tokens, prior_tokens // 4, prior_channels)
                       if max_level >= 1 else None)
        self.down_2 = (PriorTokenPool(prior_tokens // 4, 1, prior_channels)
                       if max_level >= 2 else None)
        if zero_init:
            self.zero_init_fusions()

        for key, point in self.points.items():
            module = modules[point.name]
            if point.where == 'after':
                module.register_forward_hook(partial(self._fuse_output, key))
            else:
                module.register_forward_pre_hook(partial(self._fuse_input, key))
        self.configure_fast_path(fast_path)

    # ----------------------------------------------------------------------- construction
    @staticmethod
    def _parse_point(spec: InsertionPoint) -> dict:
        if isinstance(spec, str):
            spec = dict(name=spec)
        if not isinstance(spec, dict) or not isinstance(spec.get('name'), str):
            raise ConfigError(f'an insertion point is a sub-module name or a dict with a "name", '
                              f'got {spec!r}')
        unknown = set(spec) - {'name', 'level', 'num_heads', 'channels'}
        if unknown:
            raise ConfigError(f'insertion point {spec["name"]!r}: unknown keys {sorted(unknown)} '
                              f'(allowed: name, level, num_heads, channels)')
        return dict(spec)

    def _check_names(self, names: List[str], modules: Dict[str, nn.Module]) -> None:
        valid = [n for n in modules if n]
        for name in names:
            if name in valid:
                continue
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f' Did you mean {", ".join(map(repr, close))}?' if close else ''
            shown = valid if len(valid) <= 100 else [n for n in valid if n.count('.') <= 1]
            deeper = [n for n in valid if n not in shown]
            more = f' (and {len(deeper)} deeper sub-modules, e.g. {deeper[0]!r})' if deeper else ''
            raise ConfigError(
                f'PriorGuidedBackbone: insertion point {name!r} is not a sub-module of the '
                f'wrapped {type(self.backbone).__name__}.{hint} Valid names: '
                f'{", ".join(shown)}{more}')

    def _probe(self, specs: List[Tuple[str, dict]], modules: Dict[str, nn.Module],
               probe_size: int, in_channels: int) -> List[Optional[Tuple[int, int]]]:
        """(channels, input size / feature height) of every point, from one no-grad forward."""
        if all(s.get('channels') and s.get('level') is not None for _, s in specs):
            return [None] * len(specs)
        seen: Dict[int, Tuple[int, int]] = {}
        problems: Dict[int, str] = {}

        def record(idx, feat):
            if not (torch.is_tensor(feat) and feat.dim() == 4):
                got = tuple(feat.shape) if torch.is_tensor(feat) else type(feat).__name__
                problems[idx] = f'gives {got}, not a (B, C, H, W) feature map'
            elif idx not in seen:
                seen[idx] = (feat.shape[1], probe_size / feat.shape[2])
            elif seen[idx][0] != feat.shape[1]:
                problems[idx] = f'is called with {seen[idx][0]} and {feat.shape[1]} channels'

        handles = []
        for idx, (where, spec) in enumerate(specs):
            module = modules[spec['name']]
            if where == 'after':
                handles.append(module.register_forward_hook(
                    lambda m, args, out, idx=idx: record(idx, out)))
            else:
                handles.append(module.register_forward_pre_hook(
                    lambda m, args, idx=idx: record(idx, args[0] if args else None)))
        param = next(self.backbone.parameters(), None)
        kwargs = {} if param is None else dict(dtype=param.dtype, device=param.device)
        training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                self.backbone(torch.zeros(1, in_channels, probe_size, probe_size, **kwargs))
        finally:
            for handle in handles:
                handle.remove()
            self.backbone.train(training)
        for idx, (where, spec) in enumerate(specs):
            if idx not in seen and idx not in problems:
                problems[idx] = 'is not called in the forward of the backbone'
        if problems:
            raise ConfigError('PriorGuidedBackbone: cannot insert a HIM ' + '; '.join(
                 f'{specs[i][0]} {specs[i][1]["name"]!r}: it {msg}'
                 for i, msg in sorted(problems.items())))
        return [seen[idx] for idx in range(len(specs))]

    def zero_init_fusions(self) -> None:
        """Zero the output projection of every fusion block (the prior starts as a no-op)."""
        for key, him in self.hims.items():
            proj = getattr(him, 'proj', None)
            if not isinstance(proj, nn.Linear):
                raise ConfigError(f'zero_init needs fusion blocks with a Linear output projection '
                                  f'"proj"; {type(him).__name__} ({key}) has none')
            nn.init.zeros_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)

    def init_weights(self) -> None:
        """MMEngine initialisation (the backbone's own ``init_cfg``, e.g. a pretrained
        checkpoint, included), then the zero output projections again."""
        super().init_weights()
        if self.zero_init:
            self.zero_init_fusions()

    # ----------------------------------------------------------------------------- forward
    def forward(self, img: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """img: (B, 3, H, W) (sizes as the backbone needs); prior: (B, N, C') -> backbone output.
        """
        want = (self.prior_tokens, self.prior_channels)
        if prior is None or prior.dim() != 3 or tuple(prior.shape[1:]) != want:
            got = None if prior is None else tuple(prior.shape)
            raise ValueError(f'PriorGuidedBackbone needs a prior of shape (B, {want[0]}, '
                             f'{want[1]}), got {got}')
        pyramid = [prior]
        if self.down_1 is not None:
            pyramid.append(self.down_1(prior))
        if self.down_2 is not None:
            pyramid.append(self.down_2(pyramid[1]))
        self._pyramid = pyramid
        try:
            return self.backbone(img)
        finally:
            self._pyramid = None

    def _fuse_output(self, key: str, module: nn.Module, args, output):
        if self._pyramid is None:  # the backbone called on its own: plain behaviour
            return None
        return self.hims[key](output, self._pyramid[self.points[key].level])

    def _fuse_input(self, key: str, module: nn.Module, args):
        if self._pyramid is None:
            return None
        fused = self.hims[key](args[0], self._pyramid[self.points[key].level])
        return (fused, ) + tuple(args[1:])

    # ------------------------------------------------------------------------- state dicts
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        if self.accept_plain_state_dict:
            self._move_plain_backbone_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _move_plain_backbone_keys(self, state_dict: dict, prefix: str) -> None:
        """A plain-backbone state dict (no ``backbone.`` keys) -> keys under ``backbone.``."""
        if any(k.startswith(prefix + 'backbone.') for k in state_dict):
            return
        own = set(self._modules)
        backbone_keys = set(self.backbone.state_dict(keep_vars=True))
        plain = [k for k in state_dict if k.startswith(prefix)
                 and k[len(prefix):].split('.', 1)[0] not in own
                 and k[len(prefix):] in backbone_keys]
        for k in plain:
            state_dict[f'{prefix}backbone.{k[len(prefix):]}'] = state_dict.pop(k)

    def extra_repr(self) -> str:
        points = ', '.join(f'{p.where} {p.name} (C={p.channels}, level {p.level})'
                           for p in self.points.values())
        return (f'prior=({self.prior_tokens}, {self.prior_channels}), insertion points: {points}'
                f', {super().extra_repr()}')
