# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The prediction guided by each intermediate prior ``z_T, ..., z_0`` of the sampler, as one
labelled image grid (HI-Diff's Figure 1 idea: the prior sharpens the result step by
step)."""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .inference import ImageInput, image_to_tensor, load_input, make_generator, tensor_to_image

DEFAULT_COLS = 5


def prior_labels(num_train_timesteps: int, timesteps: Sequence[int]) -> List[str]:
    """Labels of the chain ``[z_T, ...]`` visited through the 0-based ``timesteps``.

    The official 1-based names: the start is ``z_T``; the step at 0-based ``t`` that jumps to
    the next visited step ``s`` (or to the clean end) gives ``z_{s+1}`` (``z_0`` at the end).
    """
    labels = [f'z_{num_train_timesteps} (noise)']
    for i in range(len(timesteps)):
        nxt = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        labels.append(f'z_{nxt + 1}')
    return labels


def diffusion_trajectory(model: torch.nn.Module,
                         image: ImageInput,
                         seed: Optional[int] = None,
                         tile: Optional[int] = None,
                         overlap: Optional[int] = None,
                         steps: Optional[int] = None,
                         self_ensemble: Optional[bool] = None) -> List[Tuple[str, np.ndarray]]:
    """``[(label, BGR uint8 image)]``: the blurry input, then the prediction guided by each
    intermediate prior from ``z_T`` (pure noise) to ``z_0`` (the prior used for prediction).

    The frames come out of the editor's own prediction (``model.forward_tensor`` with
    ``return_intermediates=True``), so every option applies as in :func:`deblur` (``tile``,
    ``overlap``, ``steps``, ``self_ensemble``; ``None`` keeps the model's ``test_cfg``) and the
    sampler is the model's; one ``z_T`` draw per prediction, seeded with ``seed``. The last
    image equals ``deblur(model, image, seed, tile, overlap, steps, self_ensemble)`` exactly.
    """
    img, _ = load_input(image)
    inputs = image_to_tensor(model, img)
    options = dict(tile=tile, tile_overlap=overlap, steps=steps, self_ensemble=self_ensemble)
    with torch.no_grad():
        _, frames = model.forward_tensor(inputs, generator=make_generator(model, seed),
                                         return_intermediates=True, **options)
    scheduler = model.prior_head.scheduler
    visited = scheduler.inference_timesteps(model.prediction_options(**options).steps)
    labels = prior_labels(len(scheduler), visited)
    return [('blurry input', img)] + [(label, tensor_to_image(model, frame))
                                      for label, frame in zip(labels, frames)]


def labelled_grid(items: Sequence[Tuple[str, np.ndarray]], cols: int = DEFAULT_COLS,
                  gap: int = 4, background: int = 255) -> np.ndarray:
    """Tile ``[(label, BGR uint8 image)]`` (same size) into one image, row by row, each image
    under a white band with its label (``cv2.putText``)."""
    if not items:
        raise ValueError('labelled_grid needs at least one image')
    h, w = items[0][1].shape[:2]
    if any(img.shape[:2] != (h, w) for _, img in items):
        raise ValueError('labelled_grid: all images must have the same size')
    cols = max(1, min(cols, len(items)))
    rows = -(-len(items) // cols)
    scale = max(0.3, min(1.2, w / 256))
    thickness = 1 if scale < 0.8 else 2
    band = int(cv2.getTextSize('Ag', cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][1] * 2.2) + 4
    cell_h, cell_w = band + h, w
    grid = np.full((rows * cell_h + (rows + 1) * gap, cols * cell_w + (cols + 1) * gap, 3),
                   background, np.uint8)
    for i, (label, img) in enumerate(items):
        r, c = divmod(i, cols)
        y0, x0 = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
        grid[y0 + band:y0 + band + h, x0:x0 + w] = img
        text = label
        while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                                thickness)[0][0] > w:
            text = text[:-1]
        cv2.putText(grid, text, (x0 + 2, y0 + band - band // 4), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return grid
