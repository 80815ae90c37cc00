"""Issue 34 (2): an EMA of the parameters for every variant (`train.ema_decay`): the recurrence,
kept in the checkpoint and resumed exactly, scored and sampled by default, selectable off."""

import glob
import json
import os

import jax
import numpy as np
import pytest
from cli import expect_error, run

from aoarm.infra import sharding
from aoarm.models import ModelConfig
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig

from helpers import tiny_run_config

EMA = ["--config.train.ema_decay=0.9", "--config.train.num_steps=8", "--config.train.log_every=4"]
EMA += ["--config.ckpt.every_steps=4", "--config.ckpt.async_save=false"]


@pytest.mark.parametrize("variant,warmup", [("two_stream", True), ("mdm", False)])
def test_the_ema_follows_its_recurrence(variant, warmup):
  """ema_n = d_n ema_{n-1} + (1 - d_n) params_n, ema_0 = the initial parameters; d_n = 0.75, or
  with the warm-up (the default) min(0.75, (1 + n) / (10 + n))."""
  c = tiny_run_config(variant)
  c.train.ema_decay = 0.75
  c.train.ema_warmup = warmup
  mcfg = ModelConfig.from_config(dict(c.model, vocab_size=8), c.data.seq_len)
  trainer = Trainer(TrainConfig.from_config(c), mcfg, sharding.make_mesh(c.mesh, jax.devices()))
  state = trainer.init_state(jax.random.key(0))
  copy = lambda t: jax.tree.map(np.array, jax.device_get(t))  # noqa: E731 (donated buffers)
  ema = copy(state.params)
  assert jax.tree.all(jax.tree.map(np.array_equal, copy(state.ema), ema))  # starts at init
  x = np.random.default_rng(0).integers(0, 8, (8, 16), dtype=np.int32)
  for n in (1, 2, 3):
    state, _ = trainer.train_step(state, sharding.global_batch(x, trainer.mesh))
    p = copy(state.params)
    d = min(0.75, (1 + n) / (10 + n)) if warmup else 0.75
    ema = jax.tree.map(lambda e, q, d=d: d * e + (1 - d) * q, ema, p)
  got = copy(state.ema)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ema)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p)))
  off = Trainer(TrainConfig.from_config(tiny_run_config(variant)), mcfg, trainer.mesh).init_state(
    jax.random.key(0)
  )
  assert off.ema is None  # no EMA: no leaves, the checkpoint is what it was


def _eval(wd, name="step_8.json"):
  return json.loads((wd / "eval" / name).read_text())


def test_ema_is_resumed_exactly_and_scored_by_default(tmp_path):
  whole, cut = tmp_path / "whole", tmp_path / "cut"
  assert run(whole, *EMA).returncode == 0
  res = run(cut, *EMA, "--config.train.stop_after=4")
  assert res.returncode == 0, res.stderr[-2000:]
  res = run(cut, *EMA)  # resumes from step 4: params, optimizer and EMA
  assert res.returncode == 0 and "resuming from step 4" in res.stderr, res.stderr[-2000:]
  a, b = _eval(whole), _eval(cut)
  assert a["weights"] == "ema" and a["nll_per_token"] == b["nll_per_token"]
  # --mode=eval scores the EMA too (the same figure), and the raw parameters when told
  res = run(whole, "--mode=eval", config=None, tiny=False)
  assert res.returncode == 0, res.stderr[-2000:]
  assert _eval(whole)["nll_per_token"] == a["nll_per_token"]
  res = run(whole, "--mode=eval", "--config.eval.ema=false", config=None, tiny=False)
  assert res.returncode == 0, res.stderr[-2000:]
  raw = _eval(whole, "step_8-params.json")
  assert raw["weights"] == "params" and raw["nll_per_token"] != a["nll_per_token"]
  # samples say which weights drew them
  res = run(whole, "--mode=sample", "--config.sample.num_samples=2", config=None, tiny=False)
  assert res.returncode == 0, res.stderr[-2000:]
  (path,) = glob.glob(os.path.join(whole, "samples", "*.jsonl"))
  with open(path) as f:
    assert json.loads(f.readline())["weights"] == "ema"


def test_switching_the_ema_on_at_a_resume_is_refused(tmp_path):
  wd = tmp_path / "run"
  plain = [e for e in EMA if "ema_decay" not in e]
  assert run(wd, *plain, "--config.train.stop_after=4").returncode == 0
  expect_error(wd, "switches the parameters' EMA on", *EMA)
