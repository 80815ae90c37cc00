"""Two-stream attention AO-ARM (XLNet-style): content stream + query stream, shared weights.

python -m aoarm.main --config=configs/two_stream.py:runlocal --workdir=/tmp/ts
"""

from aoarm.config import config_lib


def get_config(arg=None):
  c = config_lib.base_config("two_stream", arg)
  c.order.train = "random"  # uniform orders: the any-order objective
  return c


def sweep():
  """The paper's sequence-length sweep (see configs/decoupled_rope.py for the probe)."""
  return config_lib.sweep_product(**{"data.seq_len": [128, 256, 512, 1024], "seed": [0]})
