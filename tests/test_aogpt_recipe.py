"""Issue 34 (3): AO-GPT's training recipe as a config (`configs/aogpt.py:recipe`), with its
weight-decay groups (`opt.decay_tables`: every tensor of 2+ dimensions, tables included)."""

import importlib.util
import os

import jax
import numpy as np

from aoarm.config import config_check, key_table
from aoarm.models import ModelConfig, get_model
from aoarm.models.aogpt import THEIR_PARTS
from aoarm.run.train import decay_mask

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _aogpt_config():
  path = os.path.join(REPO, "configs", "aogpt.py")
  spec = importlib.util.spec_from_file_location("aogpt_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_the_recipe_sets_ao_gpts_training():
  mod = _aogpt_config()
  c = mod.get_config("recipe,seq_len=1024")
  config_check.validate(c, "cpu")
  flat = key_table.flat(c)
  for key, value in mod.RECIPE.items():
    assert flat[key] == value, key
  assert c.train.batch_size * c.data.seq_len == 1 << 20
  plain = key_table.flat(mod.get_config("seq_len=1024"))
  assert plain["opt.lr"] != 6e-4 and plain["train.ema_decay"] == 0.0  # the default is aoarm's
  local = mod.get_config("recipe,runlocal")
  config_check.validate(local, "cpu")
  assert local.opt.warmup_steps < local.train.num_steps  # runlocal keeps its own warm-up


def test_ao_gpts_weight_decay_groups_take_the_tables():
  cfg = ModelConfig(
    vocab_size=11, seq_len=8, num_layers=1, d_model=16, num_heads=2, dtype="float32",
    **THEIR_PARTS,
  )  # fmt: skip
  m = get_model(cfg)
  x = np.zeros((1, 8), np.int32)
  params = m.init(jax.random.key(0), x, x + np.arange(8))["params"]
  names = lambda mask: {  # noqa: E731
    jax.tree_util.keystr(p) for p, keep in jax.tree_util.tree_leaves_with_path(mask) if keep
  }
  ours, theirs = names(decay_mask(params)), names(decay_mask(params, tables=True))
  tables = theirs - ours
  assert tables and all("embed" in n or "pos_" in n for n in tables), tables
  assert ours < theirs
  leaves = dict(jax.tree_util.tree_leaves_with_path(params))
  assert all(leaves[p].ndim >= 2 for p in leaves if jax.tree_util.keystr(p) in theirs)
  # no bias is decayed, whatever its shape (attention's H x K, the adaptive norm's M x D):
  # AO-GPT's biases are flat vectors, outside their decayed group
  biases = {jax.tree_util.keystr(p) for p in leaves if "bias" in jax.tree_util.keystr(p)}
  assert any(leaves[p].ndim == 2 for p in leaves if jax.tree_util.keystr(p) in biases)
  assert biases and not biases & theirs


def test_the_recipe_builds_ao_gpts_model():
  c = _aogpt_config().get_config("recipe,runlocal")
  cfg = ModelConfig.from_config(c.model, c.data.seq_len)
  assert {k: getattr(cfg, k) for k in THEIR_PARTS} == THEIR_PARTS


def test_the_length_runs_take_ao_gpts_model_and_recipe_at_the_sweeps_budget():
  """configs/aogpt_length.py (issue 34, 5): every entry is aogpt with AO-GPT's parts and recipe,
  the length sweep's tokens per step and warm-up; the equal-compute entries train longer."""
  from aoarm.models.aogpt import THEIR_PARTS

  path = os.path.join(REPO, "configs", "aogpt_length.py")
  spec = importlib.util.spec_from_file_location("aogpt_length", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  entries = mod.sweep()
  assert {e["seq_len"] for e in entries} == {128, 256, 512, 1024}
  steps = {}
  for e in entries:
    arg = ",".join(f"{k}={v}" for k, v in e.items()) + ",data_dir=/nowhere"
    c = mod.get_config(arg)
    cfg = ModelConfig.from_config(c.model, c.data.seq_len)
    assert {k: getattr(cfg, k) for k in THEIR_PARTS} == THEIR_PARTS
    flat = key_table.flat(c)
    assert flat["opt.lr"] == 6e-4 and flat["train.ema_decay"] == 0.9999
    assert flat["order.l2r_prob"] == 0.1 and flat["opt.decay_tables"]
    assert c.train.batch_size * c.data.seq_len == mod.length_sweep.TOKENS_PER_STEP
    assert c.opt.warmup_steps == 100
    steps[(e["seq_len"], e.get("compute_of", ""))] = c.train.num_steps
  for L in (128, 1024):
    assert steps[(L, "two_stream")] > steps[(L, "")] == 2048
