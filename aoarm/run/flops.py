"""Parameter counts and model FLOPs per token (docs/flops.md), from the abstract parameter tree.

N counts every parameter used in a matrix product: all blocks and the output head, not the input
embedding table, position tables, norms or the query vector (aogpt's adaptive-norm projections
are matrix products, counted with the blocks). Training FLOPs per token: 6 N + 6 n_layers L d
(causal; 12 n_layers L d bidirectional). A two-stream model counts the blocks and attention of
its query stream again (every block, or the top `model.query_layers`) and the head once. All
from `Traits`, never a name.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aoarm import models
from aoarm.models import ModelConfig, get_model

H100_DATASHEET_BF16 = 989e12  # dense bf16, SXM datasheet
H100_MEASURED_BF16 = 798e12  # 8192^3 bf16 matmul measured on this workplace's H100

# Dense bf16 datasheet peaks by jax's `device_kind` (a prefix is enough), for MFU in the logs.
PEAK_BF16 = (
  ("NVIDIA H100", H100_DATASHEET_BF16),
  ("NVIDIA H200", H100_DATASHEET_BF16),
  ("NVIDIA H800", H100_DATASHEET_BF16),
  ("NVIDIA GH200", H100_DATASHEET_BF16),
  ("NVIDIA A100", 312e12),
  ("NVIDIA A800", 312e12),
  ("NVIDIA L4", 121e12),
  ("TPU v4", 275e12),
  ("TPU v5 lite", 197e12),
  ("TPU v5e", 197e12),
  ("TPU v5p", 459e12),
  ("TPU v5", 459e12),
  ("TPU v6 lite", 918e12),
  ("TPU v6e", 918e12),
)


def device_peak(device_kind: str) -> float | None:
  """The datasheet dense bf16 FLOP/s of one device of this kind, or None if unknown (a CPU)."""
  for prefix, peak in PEAK_BF16:
    if device_kind.startswith(prefix):
      return peak
  return None


def param_shapes(cfg: ModelConfig):
  model = get_model(cfg)

  def init():
    x = jnp.zeros((1, cfg.seq_len), jnp.int32)
    return model.init(jax.random.key(0), x, x + jnp.arange(cfg.seq_len))

  shapes = jax.eval_shape(init)
  return nn.unbox(shapes["params"])


def count(cfg: ModelConfig) -> dict:
  """{'total', 'blocks', 'head', 'matmul'} parameter counts."""
  tree = param_shapes(cfg)
  total = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))
  bb = tree["backbone"]
  blocks = 0
  for name, sub in bb.items():
    if name.startswith("block_"):
      for path, leaf in jax.tree_util.tree_leaves_with_path(sub):
        if "kernel" in jax.tree_util.keystr(path):
          blocks += int(np.prod(leaf.shape))
  head = cfg.vocab_size * cfg.d_model
  return {"total": total, "blocks": blocks, "head": head, "matmul": blocks + head}


def train_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
  L = seq_len or cfg.seq_len
  n = count(cfg)
  attn = 6 * cfg.num_layers * L * cfg.d_model
  traits = models.traits(cfg.variant)
  if traits.streams == 2:  # both streams through their blocks (the query stream's top
    # model.query_layers, or all); the head on one
    share = 1 + (cfg.num_layers - cfg.first_query_layer) / cfg.num_layers
    return 6 * (share * n["blocks"] + n["head"]) + share * attn
  if not traits.causal:  # every row attends every row: twice a causal mask's score FLOPs
    return 6 * n["matmul"] + 2 * attn
  return 6 * n["matmul"] + attn


def forward_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
  return train_flops_per_token(cfg, seq_len) / 3


def compute_ratio(model: dict, vocab_size: int, seq_len: int, other: str) -> float:
  """Training FLOPs per token of the variant `other` over the config model section `model`'s
  (same shape, L and vocabulary): how many more steps an equal-compute arm trains."""
  model = dict(model, vocab_size=vocab_size)
  mine = ModelConfig.from_config(model, seq_len)
  theirs = ModelConfig.from_config(dict(model, variant=other, rope={}), seq_len)
  return train_flops_per_token(theirs) / train_flops_per_token(mine)


def _from_config_file(spec: str, vocab_size: int) -> ModelConfig:
  """The model of `configs/<file>.py[:arg]` (its get_config), with this vocabulary size."""
  import importlib.util

  from aoarm.infra.errors import UserError

  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise UserError(f"--config {path} is not a file")
  mod_spec = importlib.util.spec_from_file_location("aoarm_flops_config", path)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  cfg = mod.get_config(arg or None)
  try:
    return ModelConfig.from_config(dict(cfg.model, vocab_size=vocab_size), cfg.data.seq_len)
  except ValueError as e:
    raise UserError(str(e)) from None


def main(argv=None):
  """python -m aoarm.run.flops [--config=configs/x.py[:arg] --vocab_size=V]: the table of every
  variant at two sizes, or the rows of one config's model."""
  import argparse
  import sys

  from aoarm.infra.errors import UserError
  from aoarm.models import VARIANTS

  p = argparse.ArgumentParser(description="parameter counts and FLOPs per token")
  p.add_argument("--config", default="", help="configs/<variant>.py[:arg]: that model only")
  p.add_argument("--vocab_size", type=int, default=27, help="with --config: the vocabulary")
  p.add_argument("--workdir", default="", help="a trained run: its own model and vocabulary")
  a = p.parse_args(argv)
  if a.workdir:
    import json
    import os

    path = os.path.join(a.workdir, "vocab.json")
    cfg_path = os.path.join(a.workdir, "config.json")
    if not (os.path.isfile(path) and os.path.isfile(cfg_path)):
      print(
        f"aoarm: error: {a.workdir} is no trained run (config.json, vocab.json)", file=sys.stderr
      )
      sys.exit(2)
    from aoarm.data import tokenizers

    with open(cfg_path) as f:
      run = json.load(f)
    V = tokenizers.load(path).vocab_size
    cfg = ModelConfig.from_config(dict(run["model"], vocab_size=V), run["data"]["seq_len"])
  elif a.config:
    try:
      cfg = _from_config_file(a.config, a.vocab_size)
    except UserError as e:
      print(f"aoarm: error: {e}", file=sys.stderr)
      sys.exit(2)
    if "--vocab_size" not in " ".join(argv if argv is not None else sys.argv):
      print(
        f"aoarm: note: V={a.vocab_size} (--vocab_size; --workdir=DIR reads a run's own)",
        file=sys.stderr,
      )
  if a.config or a.workdir:
    n = count(cfg)
    print(
      f"{cfg.variant}: {cfg.num_layers} layers, d={cfg.d_model}, L={cfg.seq_len}, "
      f"V={cfg.vocab_size}; {n['total']:,} parameters, N (matmul) {n['matmul']:,}; "
      f"training {train_flops_per_token(cfg) / 1e9:.4f} GFLOP/token"
    )
    return

  print("| variant | layers/d | L | V | params (total) | N (matmul) | fwd GFLOP/token |")
  print("|---|---|---|---|---|---|---|")
  two = [v for v in VARIANTS if models.traits(v).streams == 2]
  rows = [(v, {}) for v in VARIANTS] + [(v, {"query_layers": 1}) for v in two]
  for layers, d, heads, L, V in ((6, 384, 6, 1024, 27), (12, 768, 12, 1024, 50304)):
    for v, opts in rows:
      cfg = ModelConfig(
        variant=v, vocab_size=V, seq_len=L, num_layers=layers, d_model=d, num_heads=heads, **opts
      )
      n = count(cfg)
      name = v + "".join(f" ({k}={val})" for k, val in opts.items())
      print(
        f"| {name} | {layers}/{d} | {L} | {V} | {n['total']:,} | {n['matmul']:,} | "
        f"{forward_flops_per_token(cfg) / 1e9:.3f} |"
      )


if __name__ == "__main__":
  main()
