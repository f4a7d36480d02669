"""Mapping between the official HI-Diff release (BasicSR networks) and hidiff_mm modules.

The official release stores four networks, each as ``{'params': state_dict}``: ``net_g``
(Transformer), ``net_le`` (stage-1 latent encoder), ``net_le_dm`` (stage-2 latent encoder) and
``net_d`` (denoiser). hidiff_mm keeps the official submodule names, so converting a release is a
prefix change; the release file names are unreliable (official issue #2), so each file's role
is recognised from its keys.
"""
from typing import Dict, Mapping

import torch

from ..utils.errors import ConfigError, InputError

#: official network key -> parameter prefix in the ``HIDiff`` editor's state dict
EDITOR_PREFIX = {
    'net_g': 'generator.',
    'net_le': 'prior_head.encoder_s1.',
    'net_le_dm': 'prior_head.encoder_s2.',
    'net_d': 'prior_head.denoiser.',
}


def config_from_official(arch: str, kwargs: Mapping) -> dict:
    """hidiff_mm module config for an official arch name and its constructor kwargs.

    Missing kwargs take the official constructors' defaults (not the configs' values).
    """
    k = dict(kwargs)
    if arch == 'Transformer':
        if k.get('dual_pixel_task', False):
            raise ConfigError('dual_pixel_task=True is not part of HI-Diff and is not supported')
        embed_dim, group = k.get('embed_dim', 48), k.get('group', 4)
        return dict(
            type='HIDiffTransformer',
            in_channels=k.get('inp_channels', 3),
            out_channels=k.get('out_channels', 3),
            dim=k.get('dim', 48),
            num_blocks=list(k.get('num_blocks', [4, 6, 6, 8])),
            num_refinement_blocks=k.get('num_refinement_blocks', 4),
            heads=list(k.get('heads', [1, 2, 4, 8])),
            ffn_expansion=k.get('ffn_expansion_factor', 2.66),
            bias=k.get('bias', False),
            norm_type=k.get('LayerNorm_type', 'WithBias'),
            prior_channels=4 * embed_dim,
            prior_tokens=group * group)
    if arch in ('latent_encoder_gelu', 'latent_encoder_lrelu'):
        return dict(
            type='HIDiffLatentEncoder',
            in_channels=k.get('in_chans', 6),
            embed_dim=k.get('embed_dim', 64),
            num_blocks=k.get('block_num', 4),
            group=k.get('group', 4),
            act='gelu' if arch.endswith('gelu') else 'lrelu',
            token_expansion=k.get('patch_expansion', 0.5),
            channel_expansion=k.get('channel_expansion', 4))
    if arch == 'denoising':
        if k.get('in_channel', 6) != k.get('out_channel', 3):
            raise ConfigError('denoising: in_channel must equal out_channel for a prior denoiser')
        group = k.get('group', 4)
        return dict(
            type='HIDiffMixerDenoiser',
            prior_channels=k.get('in_channel', 6),
            inner_channels=k.get('inner_channel', 32),
            num_mixer_blocks=k.get('block_num', 3) - 2,
            num_tokens=group * group,
            token_expansion=k.get('patch_expansion', 0.5),
            channel_expansion=k.get('channel_expansion', 4),
            time_scale_init=k.get('layerscale_value', 1e-3))
    if arch == 'simple_denoise':
        return dict(
            type='HIDiffMLPDenoiser',
            prior_channels=4 * k.get('n_feats', 64),
            num_layers=k.get('n_denoise_res', 5),
            time_scale=10. * k.get('timesteps', 5))
    raise ConfigError(f'unknown official arch {arch!r}')


def strip_official(obj: Mapping, source: str = '<state dict>') -> Dict[str, torch.Tensor]:
    """The bare state dict of an official file: unwrap ``params`` and drop ``module.``."""
    state = obj.get('params', obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(f'{source}: expected an official BasicSR file {{"params": state_dict}} '
                         'or a bare state dict of tensors')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}


def official_role(state: Mapping[str, torch.Tensor], source: str = '<state dict>') -> str:
    """Which official network a bare state dict is: net_g, net_le, net_le_dm or net_d."""
    if 'patch_embed.proj.weight' in state:
        return 'net_g'
    if 'conv1.0.weight' in state:
        in_chans = state['conv1.0.weight'].shape[1] // 16
        if in_chans not in (3, 6):
            raise InputError(f'{source}: latent encoder with {in_chans} input channels '
                             '(expected 6 for net_le or 3 for net_le_dm)')
        return 'net_le' if in_chans == 6 else 'net_le_dm'
    if 'time_mlp' in state or 'resmlp.0.weight' in state:
        return 'net_d'
    raise InputError(f'{source}: not an official HI-Diff network (keys start with '
                     f'{sorted(state)[:3]})')


def official_variant(states: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """'gopro' (GELU encoders, mixer denoiser) or 'realblur' (LeakyReLU, MLP denoiser)."""
    votes = set()
    for role, state in states.items():
        if role in ('net_le', 'net_le_dm'):
            votes.add('gopro' if 'conv2.weight' in state else 'realblur')
        elif role == 'net_d':
            votes.add('gopro' if 'time_mlp' in state else 'realblur')
    if len(votes) > 1:
        raise InputError('the files mix GoPro networks (GELU encoder / mixer denoiser) with '
                         'RealBlur ones (LeakyReLU encoder / MLP denoiser)')
    return votes.pop() if votes else 'gopro'
