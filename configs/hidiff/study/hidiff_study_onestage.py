# The study's one-stage run (docs/samplers.md): the study model trained for the two stages'
# 600 + 600 iterations in one run (HIDiffOneStage), one learning-rate cycle, the Transformer
# moving from the oracle prior to the diffused one between iterations 300 and 900.
_base_ = ['./hidiff_study_s1.py']

experiment_name = 'hidiff_study_onestage'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(type='HIDiffOneStage', stage='joint')

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=1200, eta_min=1e-5, begin=0, end=1200, by_epoch=False)
]
train_cfg = dict(max_iters=1200)
default_hooks = dict(checkpoint=dict(interval=1200))

custom_hooks = [
    dict(type='PriorRampHook', begin=300, end=900),
    dict(type='ExactResumeHook'),
]
