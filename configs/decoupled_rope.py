"""Decoupled RoPE (the paper's single-stream probe): queries rotated by the target position.

  python -m aoarm.main --config=configs/decoupled_rope.py:runlocal --workdir=/tmp/dr
Beyond the paper: --config.model.rope.target_heads=0.5 / --config.model.rope.order_dims=0.5.
"""

from aoarm.config import config_lib


def get_config(arg=None):
  c = config_lib.base_config("decoupled_rope", arg)
  c.model.rope.target_heads = 1.0  # 1.0 = the paper; the rest of the heads query by own position
  c.model.rope.order_dims = 0.0  # fraction of rotary dims encoding generation step
  return c


def sweep():
  base = config_lib.sweep_product(**{"data.seq_len": [128, 256, 512, 1024], "seed": [0]})
  heads = config_lib.sweep_product(
    **{"data.seq_len": [128, 1024], "seed": [0], "model.rope.target_heads": [0.5]}
  )
  dims = config_lib.sweep_product(
    **{"data.seq_len": [128, 1024], "seed": [0], "model.rope.order_dims": [0.5]}
  )
  return base + heads + dims
