"""Padding an image up to the size granularity of the Transformer."""
import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``(B, C, H, W)`` so that H and W are multiples of ``multiple``.

    Reflect padding (the official choice) where the image is large enough for it, i.e. where
    the padding is shorter than the side. A side too short for that (e.g. 3 pixels padded to 8,
    or a single pixel) is reflected as far as it goes and then continued by repeating its last
    row/column (replicate padding), so images of any size from 1x1 up can be predicted.
    Crop the prediction back with ``[..., :H, :W]``.
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
