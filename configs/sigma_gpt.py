"""sigma-GPT: learned own- and target-position tables added to the input, no RoPE.

python -m aoarm.main --config=configs/sigma_gpt.py:runlocal --workdir=/tmp/sg
"""

from aoarm.config import config_lib


def get_config(arg=None):
  c = config_lib.base_config("sigma_gpt", arg)
  c.order.train = "random"
  return c


def sweep():
  return config_lib.sweep_product(**{"data.seq_len": [128, 256, 512, 1024], "seed": [0]})
