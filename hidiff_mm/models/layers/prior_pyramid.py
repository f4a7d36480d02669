"""The prior pyramid: pool N prior tokens to N/4 (and then to 1) for the coarser levels."""
import torch
from torch import nn


class _SwapTokenChannel(nn.Module):
    """(B, N, C) <-> (B, C, N)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class PriorTokenPool(nn.Sequential):
    """``(B, N_in, C') -> (B, N_out, C')``: a Linear over the token axis, then one over channels.

    No activation in between. Built as a Sequential so that its state keys (``1.*`` token
    Linear, ``3.*`` channel Linear) are those of the official ``down_1`` / ``down_2``.
    """

    def __init__(self, in_tokens: int, out_tokens: int, prior_channels: int) -> None:
        super().__init__(_SwapTokenChannel(), nn.Linear(in_tokens, out_tokens),
                         _SwapTokenChannel(), nn.Linear(prior_channels, prior_channels))
