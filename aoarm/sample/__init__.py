"""Sampling from a trained run.

- `sampling`: the compiled samplers (ancestral, k per step, adaptive order, mdm unmasking).
- `sample_spec`: the sampler settings (`SampleSpec`) and their checks.
- `front`: `load_run`, `sampler` and `--mode=sample`: the one front-end.
- `gen_samples`: the samples over a grid of temperatures a frontier scores.
"""
