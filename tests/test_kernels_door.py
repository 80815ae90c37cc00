"""The kernels' one door (`aoarm.kernels`): its names, its `auto` table, its refusals, and that a
run off GPU never imports a kernel module."""

import os
import subprocess
import sys

import pytest

from aoarm import kernels
from aoarm.config import config_check, config_lib
from aoarm.infra.errors import UserError


def test_every_site_has_one_rule_and_one_knob():
  cfg = config_lib.base_config("ar", None)
  knobs = set(cfg.model.kernels) - {"attention", "embed"}  # XLA/cuDNN choices, not ours
  assert knobs | {"logsumexp"} == set(kernels.AUTO)  # the log-sum-exp has no knob
  for site, rule in kernels.AUTO.items():
    path = os.path.join(os.path.dirname(kernels.__file__), rule.module + ".py")
    assert os.path.isfile(path), (site, path)


def test_auto_is_xla_off_gpu_and_bad_names_are_refused():
  for site in kernels.AUTO:
    assert kernels.resolve(site, "auto") == "xla"
    assert kernels.resolve(site, "xla") == "xla"
    with pytest.raises(ValueError, match=f"model.kernels.{site} must be one of"):
      kernels.resolve(site, "triton")


def test_pallas_off_gpu_needs_the_interpreter_asked_for_by_name(monkeypatch):
  monkeypatch.setenv(kernels.INTERPRET_ENV, "1")  # as the suite runs
  assert kernels.resolve("norm", "pallas") == "pallas"
  monkeypatch.delenv(kernels.INTERPRET_ENV)
  with pytest.raises(ValueError, match=r"model.kernels.norm='pallas' needs a GPU; this backend"):
    kernels.resolve("norm", "pallas")
  cfg = config_lib.base_config("ar", None)
  cfg.model.kernels.mlp = "pallas"
  with pytest.raises(
    UserError, match="model.kernels.mlp='pallas' needs a GPU; this backend is tpu"
  ):
    config_check.validate(cfg, "tpu")  # before anything is compiled


def test_take_falls_back_for_auto_and_raises_for_pallas(monkeypatch):
  monkeypatch.setattr(kernels, "resolve", lambda site, impl="auto": "pallas")
  assert kernels.take("mlp", "auto", 8192, None)
  assert not kernels.take("mlp", "auto", 128, None)  # below the rule's min_rows
  assert not kernels.take("mlp", "auto", 8192, "float32")
  with pytest.raises(ValueError, match="model.kernels.mlp='pallas' cannot run this call: float32"):
    kernels.take("mlp", "pallas", 8192, "float32")


def test_old_knob_names_still_work():
  """model.norm_impl (committed results' commands name it) lands on model.kernels.norm; a
  clash between the two names is refused."""
  cfg = config_lib.base_config("ar", None)
  with cfg.unlocked():
    cfg.model.norm_impl = "xla"
  config_lib.apply_aliases(cfg)
  assert cfg.model.kernels.norm == "xla" and "norm_impl" not in cfg.model
  config_check.validate(cfg, "cpu")
  with cfg.unlocked():
    cfg.model.mlp_impl = "xla"
  cfg.model.kernels.mlp = "pallas"
  with pytest.raises(UserError, match="disagree"):
    config_lib.apply_aliases(cfg)
  from aoarm.config.cli_flags import _new_names

  argv = ["x", "--config.model.qkv_impl=xla", "--config.model.d_model=8"]
  assert _new_names(argv) == ["x", "--config.model.kernels.qkv=xla", "--config.model.d_model=8"]


def test_a_cpu_forward_and_backward_import_no_kernel_module():
  """What a TPU or CPU user runs never opens a kernel module of aoarm/kernels/* (only the door
  itself, and `gelu_math`: the GELU's constants and derivative in jnp, which the model's `gelu`
  shares with the MLP kernel)."""
  code = """
import sys, jax, jax.numpy as jnp
from aoarm import losses, orders
from aoarm.models import ModelConfig, get_model
for v in ("ar", "two_stream", "mdm"):
  cfg = ModelConfig(variant=v, vocab_size=11, seq_len=8, num_layers=1, d_model=16, num_heads=2,
                    dtype="float32")
  m = get_model(cfg)
  x = jnp.zeros((2, 8), jnp.int32)
  s = orders.identity_orders(2, 8)
  p = m.init(jax.random.key(0), x, s)["params"]
  jax.grad(lambda p: losses.token_nll(m.apply({"params": p}, x, s), x).mean())(p)
shared = "aoarm.kernels.gelu_math"
print(sorted(k for k in sys.modules if k.startswith("aoarm.kernels.") and k != shared))
"""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop(kernels.INTERPRET_ENV, None)
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
