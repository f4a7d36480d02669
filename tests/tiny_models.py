# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The tiny HI-Diff of the tests (random weights train and run in seconds on a CPU), defined
once: the tool and API tests write it to a config file, the deployment tests build it, and the
training tests merge its networks into ``configs/hidiff_demo.py``."""
TINY_GENERATOR = dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                      num_refinement_blocks=1, prior_channels=16)
TINY_PRIOR_HEAD = dict(
    type='LatentPriorHead',
    encoder_s1=dict(type='HIDiffLatentEncoder', in_channels=6, embed_dim=4, num_blocks=1),
    encoder_s2=dict(type='HIDiffLatentEncoder', in_channels=3, embed_dim=4, num_blocks=1),
    denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=16, inner_channels=16))
TINY_HIDIFF = dict(
    type='HIDiff', stage=2, generator=TINY_GENERATOR, prior_head=TINY_PRIOR_HEAD,
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
