"""Small shared fixtures for model tests: tiny configs, init, unboxed params."""

import flax.linen as nn
import jax

from aoarm import orders
from aoarm.models import VARIANTS, ModelConfig, get_model, traits
from aoarm.models.aogpt import THEIR_PARTS
from aoarm.models.model_config import CHOICES as KERNEL_CHOICES
from aoarm.models.model_config import Kernels

# From the registry: a new variant enters every test parametrised by these lists.
AO_VARIANTS = tuple(v for v in VARIANTS if traits(v).random_orders)
CAUSAL_VARIANTS = tuple(v for v in VARIANTS if traits(v).has_order)
# AO-GPT's own model's parts (scxue/AO-GPT-MDM's: learned positions, biases, untied head, ...)
AOGPT_PARTS = {k: v for k, v in THEIR_PARTS.items() if k != "variant"}
AOGPT_CONFIG = {f"model.{k}": v for k, v in AOGPT_PARTS.items()}  # as tiny_run_config's keys
# decoupled_rope's beyond-the-paper options get the same treatment as the paper's variants.
CAUSAL_CASES = [(v, {}) for v in CAUSAL_VARIANTS] + [
  ("decoupled_rope", {"target_heads": 0.5}),
  ("decoupled_rope", {"order_dims": 0.5}),
  ("decoupled_rope", {"target_heads": 0.5, "order_dims": 0.25}),
  ("two_stream", {"query_layers": 1}),  # the query stream in the top block only
  ("aogpt", {"own_positions": "learned"}),  # AO-GPT's own-position table, no RoPE
  ("aogpt", AOGPT_PARTS),  # and biases, untied head, exact GELU, its norms' epsilon
]


def tiny(variant, vocab=11, seq_len=8, **kw):
  kw.setdefault("num_layers", 2)
  kw.setdefault("d_model", 32)
  kw.setdefault("num_heads", 4)
  kw.setdefault("dtype", "float32")  # the references are float32/float64 (ModelConfig's is bf16)
  kern = {k: kw.pop(k) for k in list(kw) if k in KERNEL_CHOICES}  # e.g. mlp="pallas"
  return ModelConfig(
    variant=variant, vocab_size=vocab, seq_len=seq_len, kernels=Kernels(**kern), **kw
  )


def init(cfg, batch=2, seed=0, sharpen=4.0):
  """Model, params, tokens, orders. Params are scaled by `sharpen` so that attention is far from
  uniform at init: a wrong mask or position then moves the logits by a lot, not by 1e-4."""
  model = get_model(cfg)
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.randint(k1, (batch, cfg.seq_len), 0, cfg.vocab_size)
  sigma = orders.random_orders(k2, batch, cfg.seq_len)
  variables = model.init(k3, x, sigma)
  params = jax.tree.map(lambda p: p * sharpen, nn.unbox(variables["params"]))
  # Biases start at zero (aogpt's adaptive norm: gates near 0, blocks near the identity); give
  # them values, so that the blocks' work shows in the logits.
  leaves, tree = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  params = jax.tree_util.tree_unflatten(
    tree,
    [
      0.1 * jax.random.normal(k, p.shape, p.dtype) if "bias" in jax.tree_util.keystr(path) else p
      for k, (path, p) in zip(keys, leaves)
    ],
  )
  return model, params, x, sigma


def case_id(case):
  v, kw = case
  return v + "".join(f"-{k}={val}" for k, val in kw.items())


def tiny_run_config(variant="two_stream", **over):
  """A full run config that trains in seconds on CPU: markov data, 1-2 tiny layers."""
  from aoarm.config import config_lib

  c = config_lib.base_config(variant, "runlocal")
  c.data.source = "markov"
  c.data.markov_tokens = 20_000
  c.data.seq_len = 16
  c.model.update(num_layers=2, d_model=32, num_heads=2, dtype="float32")
  c.train.update(batch_size=8, num_steps=12, log_every=1, eval_batches=2)
  c.opt.update(warmup_steps=2, lr=3e-3)
  c.ckpt.update(every_steps=4, async_save=False)
  c.eval.update(batch_size=8, max_windows=32)
  for k, v in over.items():
    *path, key = k.split(".")
    node = c
    for p in path:
      node = node[p]
    node[key] = v
  return c


def losses_by_step(workdir):
  """The last logged train loss of each step in WORKDIR/metrics.jsonl."""
  import json
  import os

  out = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if "train/loss" in row:
        out[row["step"]] = row["train/loss"]
  return out


def kernel_layers(variant) -> int:
  """Layers for a model test of an interpreted kernel: each kernel call costs ~2 s in Pallas's
  CPU interpreter whatever its tiles, so one layer where one layer runs every kernel site;
  two for a two-stream model, whose last layer has no content stream."""
  return 2 if traits(variant).streams == 2 else 1


def assert_kernel_matches_xla(variant, field, jit=False, **kw):
  """The bf16 model with config `field` = pallas against xla: the same parameter tree, the
  loss within 1%, every parameter's gradient within a few bf16 roundings."""
  import numpy as np

  from aoarm import losses

  out = {}
  for impl in ("xla", "pallas"):
    model, params, x, sigma = init(
      tiny(variant, dtype="bfloat16", **{"num_layers": kernel_layers(variant), field: impl, **kw}),
      sharpen=1.0,
    )

    def f(p, model=model, x=x, sigma=sigma):
      return losses.any_order_nll(model.apply, p, x, sigma).mean()

    grad = jax.value_and_grad(f)
    out[impl] = (jax.jit(grad) if jit else grad)(params)
  assert jax.tree.structure(out["pallas"][1]) == jax.tree.structure(out["xla"][1])
  np.testing.assert_allclose(out["pallas"][0], out["xla"][0], rtol=1e-2)
  for a, b in zip(jax.tree.leaves(out["pallas"][1]), jax.tree.leaves(out["xla"][1])):
    np.testing.assert_allclose(a, b, rtol=0.1, atol=0.05 * float(np.abs(b).max()) + 1e-6)


def damage_checkpoint_arrays(state_dir):
  """Overwrite every array file of a checkpoint's `state` folder with garbage (its metadata
  files left as they are): the step is listed but cannot be read."""
  import os

  damaged = 0
  for root, _, files in os.walk(state_dir):
    for f in files:
      if not f.startswith("_") and "metadata" not in f.lower():
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")
        damaged += 1
  assert damaged > 0
