# HI-Diff stage 2 on GoPro (official options/train/GoPro_S2.yml): start from the stage-1
# checkpoint; the stage-1 encoder is frozen and gives the target prior; the Transformer, the
# stage-2 encoder and the denoiser train for 300k iterations through the full T = 8 chain.
_base_ = ['./hidiff_s1_gopro.py']

experiment_name = 'hidiff_s2_gopro'
work_dir = f'./work_dirs/{experiment_name}'

# As the official S2 run: the Transformer and the stage-1 encoder from stage 1, loaded strictly
# (a missing or unexpected key fails and names the keys); stage-2 encoder and denoiser fresh.
# Validation and test blind (the stage-1 config it inherits validates with the oracle prior).
model = dict(stage=2, oracle_prior=False,
             init_from_stage1='./work_dirs/hidiff_s1_gopro/iter_300000.pth')
