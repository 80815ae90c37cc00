"""AO-GPT's single stream (Xue et al., ICML 2026): the target position enters every block through
adaptive layer norm, attention has QK-norm (docs/variants.md).

  python -m aoarm.main --config=configs/aogpt.py:runlocal --workdir=/tmp/aogpt
"""

from aoarm.config import config_lib


def get_config(arg=None):
  return config_lib.base_config("aogpt", arg)


def sweep():
  return config_lib.sweep_product(**{"data.seq_len": [128, 1024], "seed": [0]})
