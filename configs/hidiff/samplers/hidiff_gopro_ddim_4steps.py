# The GoPro model sampled with deterministic DDIM (eta = 0) in 4 of its 8 steps instead of the
# official 8-step posterior-mean chain (docs/samplers.md). Only the sampler changes, so any
# checkpoint of the GoPro recipe (trained or converted from the official weights) tests with it:
#   python tools/test.py configs/hidiff/samplers/hidiff_gopro_ddim_4steps.py CHECKPOINT
# DiffusionSettingsHook refuses a checkpoint whose recorded T, beta schedule or parameterisation
# differ from this config, and logs the sampling settings that differ.
_base_ = ['../hidiff_s2_gopro.py']

experiment_name = 'hidiff_gopro_ddim_4steps'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    prior_head=dict(scheduler=dict(sampler=dict(type='ddim', eta=0.0))),
    test_cfg=dict(steps=4))

custom_hooks = [
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
