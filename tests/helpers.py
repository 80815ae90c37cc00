"""Small shared fixtures for model tests: tiny configs, init, unboxed params."""

import flax.linen as nn
import jax

from aoarm import orders
from aoarm.models import ModelConfig, get_model

AO_VARIANTS = ("two_stream", "decoupled_rope", "sigma_gpt")
CAUSAL_VARIANTS = ("ar",) + AO_VARIANTS
# decoupled_rope's beyond-the-paper options get the same treatment as the paper's variants.
CAUSAL_CASES = [(v, {}) for v in CAUSAL_VARIANTS] + [
  ("decoupled_rope", {"target_heads": 0.5}),
  ("decoupled_rope", {"order_dims": 0.5}),
  ("decoupled_rope", {"target_heads": 0.5, "order_dims": 0.25}),
]


def tiny(variant, vocab=11, seq_len=8, **kw):
  kw.setdefault("num_layers", 2)
  kw.setdefault("d_model", 32)
  kw.setdefault("num_heads", 4)
  return ModelConfig(variant=variant, vocab_size=vocab, seq_len=seq_len, **kw)


def init(cfg, batch=2, seed=0, sharpen=4.0):
  """Model, params, tokens, orders. Params are scaled by `sharpen` so that attention is far from
  uniform at init: a wrong mask or position then moves the logits by a lot, not by 1e-4."""
  model = get_model(cfg)
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.randint(k1, (batch, cfg.seq_len), 0, cfg.vocab_size)
  sigma = orders.random_orders(k2, batch, cfg.seq_len)
  variables = model.init(k3, x, sigma)
  params = jax.tree.map(lambda p: p * sharpen, nn.unbox(variables["params"]))
  return model, params, x, sigma


def case_id(case):
  v, kw = case
  return v + "".join(f"-{k}={val}" for k, val in kw.items())
