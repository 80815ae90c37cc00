"""Masked diffusion (MDLM, absorbing state, linear schedule): bidirectional, ELBO objective.

python -m aoarm.main --config=configs/mdm.py:runlocal --workdir=/tmp/mdm
"""

from aoarm.config import config_lib


def get_config(arg=None):
  c = config_lib.base_config("mdm", arg)
  c.eval.l2r = False  # no order: eval uses K stratified masking rates per window
  # 8 rates per window: one rate per window made mdm's ± the widest of the sweep (issue 16)
  c.eval.num_orders = 8
  return c


def sweep():
  return config_lib.sweep_product(**{"data.seq_len": [128, 256, 512, 1024], "seed": [0]})
