# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Paired deblurring data: dataset, transforms, synthetic pairs and GoPro patch geometry."""
from .paired_deblur_dataset import PairedDeblurDataset
from .transforms import LoadImagePair, RandomDihedral

__all__ = ['PairedDeblurDataset', 'LoadImagePair', 'RandomDihedral']
