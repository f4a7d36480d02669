# One-stage HI-Diff on the procedural blur set (docs/samplers.md): the demo's model, data and 600
# iterations, but the stage-1 encoder, stage-2 encoder, denoiser and Transformer train together
# from the first iteration (HIDiffOneStage) and there is no stage switch. The Transformer sees
# the stage-1 (oracle) prior until iteration 150, the diffused prior from 450 on, a linear blend
# in between (PriorRampHook). Validation is blind. One learning-rate cycle over the run.
#   python tools/train.py configs/hidiff/hidiff_onestage_demo.py
_base_ = ['../hidiff_demo.py']

experiment_name = 'hidiff_onestage_demo'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(type='HIDiffOneStage', stage='joint')

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=600, eta_min=1e-5, begin=0, end=600, by_epoch=False)
]

custom_hooks = [
    dict(type='PriorRampHook', begin=150, end=450),
    dict(type='ExactResumeHook'),
]
