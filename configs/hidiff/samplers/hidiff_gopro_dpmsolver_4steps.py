# The GoPro model sampled with DPM-Solver++(2M) in 4 of its 8 steps instead of the official
# 8-step posterior-mean chain (docs/samplers.md); otherwise as the DDIM config it inherits (any
# GoPro-recipe checkpoint, trained or converted; DiffusionSettingsHook checks it):
#   python tools/test.py configs/hidiff/samplers/hidiff_gopro_dpmsolver_4steps.py CHECKPOINT
_base_ = ['./hidiff_gopro_ddim_4steps.py']

experiment_name = 'hidiff_gopro_dpmsolver_4steps'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    prior_head=dict(
        scheduler=dict(sampler=dict(_delete_=True, type='dpmsolver++', solver_order=2))))
