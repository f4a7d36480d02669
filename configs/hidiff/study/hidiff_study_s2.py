# The study's stage 2 (docs/samplers.md): 600 iterations from the study's stage-1 checkpoint
# (Transformer and stage-1 encoder loaded strictly, fresh optimizer and learning-rate cycle),
# with the parameterisation and beta schedule that benchmarks/sampler_study.py sets per run.
_base_ = ['./hidiff_study_s1.py']

experiment_name = 'hidiff_study_s2'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(stage=2, init_from_stage1='./work_dirs/hidiff_study_s1/iter_600.pth')
