"""A variant is one unit: the registry lists it, its class declares what it is, a config file
builds it, and nothing outside aoarm/models/ compares variant names."""

import os
import re

import pytest

from aoarm.models import VARIANTS, traits
from aoarm.models.variant import OBJECTIVES, SAMPLERS

from helpers import CAUSAL_VARIANTS

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_declares_itself_and_has_a_config(variant):
  import importlib.util

  t = traits(variant)
  assert t.objective in OBJECTIVES and t.sampler in SAMPLERS
  assert (t.sampler == "unmask") == (not t.has_order)
  path = os.path.join(ROOT, "configs", f"{variant}.py")
  spec = importlib.util.spec_from_file_location(f"cfg_{variant}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  assert mod.get_config("runlocal").model.variant == variant


def test_every_variant_with_an_order_is_in_the_causal_tests():
  """The leakage, layout and sampling tests take their variants from the registry."""
  assert set(CAUSAL_VARIANTS) == {v for v in VARIANTS if traits(v).has_order}


def test_no_module_outside_models_compares_variant_names():
  names = "|".join(VARIANTS)
  compare = re.compile(rf"variant\s*(==|!=|in|not in)|[\"']({names})[\"']")
  found = []
  pkg = os.path.join(ROOT, "aoarm")
  for root, _, files in os.walk(pkg):
    if os.path.join("aoarm", "models") in root:
      continue
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(root, f)
        for i, line in enumerate(open(path, encoding="utf-8"), 1):
          code = line.split("#")[0]
          if compare.search(code):
            found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
  assert not found, "\n".join(found)


def test_query_layers_cost_their_share_of_the_second_stream():
  """aoarm.run.flops: a query stream in the top n of L blocks adds n/L of a full second stream."""
  from aoarm.models import ModelConfig
  from aoarm.run import flops

  kw = dict(vocab_size=50, seq_len=64, num_layers=4, d_model=64, num_heads=4)
  ar = flops.train_flops_per_token(ModelConfig(variant="ar", **kw))
  full = flops.train_flops_per_token(ModelConfig(variant="two_stream", **kw))
  for n in (1, 2, 4):
    part = flops.train_flops_per_token(ModelConfig(variant="two_stream", query_layers=n, **kw))
    assert part - ar == pytest.approx(n / 4 * (full - ar))


def test_query_layers_is_checked():
  from aoarm.models import ModelConfig

  with pytest.raises(ValueError, match="query_layers must be in"):
    ModelConfig(variant="two_stream", num_layers=2, query_layers=3)
  with pytest.raises(ValueError, match="two-stream variants only"):
    ModelConfig(variant="decoupled_rope", query_layers=1)
  with pytest.raises(ValueError, match="applies to aogpt only"):
    ModelConfig(variant="decoupled_rope", own_positions="learned")
  with pytest.raises(ValueError, match="rope|learned"):
    ModelConfig(variant="aogpt", own_positions="sinusoid")


def test_aogpt_init_options_set_the_gates_and_the_target_embedding():
  """Default: AO-GPT's init (every gate bias 0, target-position embedding std 0.02);
  ada_gate_init / ada_cond_std set the two gate rows of every block's modulation bias (shift and
  scale rows stay 0, the final norm has no gate) and the embedding's scale; other variants
  refuse them."""
  import flax.linen as nn
  import jax
  import numpy as np

  from aoarm import orders
  from aoarm.models import ModelConfig, get_model
  from aoarm.models.adaptive_norm import Modulation

  gates = [Modulation._fields.index(g) for g in ("gate_attn", "gate_mlp")]
  for gate, std in ((0.0, 0.02), (1.0, 1.0)):
    cfg = ModelConfig(
      variant="aogpt", vocab_size=11, seq_len=64, num_layers=2, d_model=32, num_heads=4,
      ada_gate_init=gate, ada_cond_std=std, dtype="float32",
    )  # fmt: skip
    x = np.zeros((1, 64), np.int32)
    sigma = orders.random_orders(jax.random.key(0), 1, 64)
    p = nn.unbox(get_model(cfg).init(jax.random.key(1), x, sigma))["params"]
    for i in range(2):
      b_6xD = np.asarray(p["backbone"][f"block_{i}"]["ada"]["bias"])
      assert (b_6xD[gates] == gate).all()
      assert (np.delete(b_6xD, gates, axis=0) == 0).all()
    assert (np.asarray(p["backbone"]["final_ada"]["bias"]) == 0).all()
    emb = np.asarray(p["pos_tgt"]["embedding"])
    assert abs(emb.std() / std - 1) < 0.1
  with pytest.raises(ValueError, match="apply to aogpt only"):
    ModelConfig(variant="decoupled_rope", ada_gate_init=1.0)
  with pytest.raises(ValueError, match="ada_cond_std must be > 0"):
    ModelConfig(variant="aogpt", ada_cond_std=0.0)
