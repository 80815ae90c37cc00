"""Left-to-right autoregressive baseline (also the judge model for generative perplexity).

python -m aoarm.main --config=configs/ar.py:runlocal --workdir=/tmp/ar
"""

from aoarm.config import config_lib


def get_config(arg=None):
  c = config_lib.base_config("ar", arg)
  c.order.train = "l2r"  # ar is always left to right
  c.eval.l2r = False  # its only order is left to right: one report
  return c


def sweep():
  return config_lib.sweep_product(**{"data.seq_len": [128, 256, 512, 1024], "seed": [0]})
