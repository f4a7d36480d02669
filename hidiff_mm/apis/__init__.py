# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Inference and evaluation tools, a thin layer over the editor: model loading, deblurring
(tiled, seeded, fewer steps, self-ensemble: the editor's prediction options), the
prior-trajectory grid and the results table. See docs/inference.md."""
from ..models.editors.tiling import ramp_weights, tile_grid, tile_starts, tiled_apply
from .inference import (deblur, image_to_tensor, init_model, list_images, load_weights, read_image,
                        tensor_to_image, to_bgr_uint8)
from .results_table import (build_results_table, load_paper_results, results_table_markdown,
                            write_results_table)
from .trajectory import diffusion_trajectory, labelled_grid, prior_labels

__all__ = [
    'init_model', 'load_weights', 'deblur', 'read_image', 'to_bgr_uint8', 'list_images',
    'image_to_tensor', 'tensor_to_image', 'tiled_apply', 'tile_starts', 'tile_grid',
    'ramp_weights', 'diffusion_trajectory', 'labelled_grid', 'prior_labels',
    'load_paper_results', 'build_results_table', 'results_table_markdown', 'write_results_table'
]
