# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Inference and evaluation tools: model loading, deblurring (tiled, seeded, fewer steps,
self-ensemble), the prior-trajectory grid and the results table. See docs/inference.md."""
from .inference import (deblur, dihedral, dihedral_inverse, image_to_tensor, init_model,
                        list_images, load_weights, pad_to_multiple, predict_tensor, read_image,
                        sample_prior, tensor_to_image, to_bgr_uint8)
from .results_table import (build_results_table, load_paper_results, results_table_markdown,
                            write_results_table)
from .tiling import ramp_weights, tile_grid, tile_starts, tiled_apply
from .trajectory import diffusion_trajectory, labelled_grid, prior_labels

__all__ = [
    'init_model', 'load_weights', 'deblur', 'predict_tensor', 'sample_prior', 'read_image',
    'to_bgr_uint8', 'list_images', 'image_to_tensor', 'tensor_to_image', 'pad_to_multiple',
    'dihedral', 'dihedral_inverse', 'tiled_apply', 'tile_starts', 'tile_grid', 'ramp_weights',
    'diffusion_trajectory', 'labelled_grid', 'prior_labels', 'load_paper_results',
    'build_results_table', 'results_table_markdown', 'write_results_table'
]
