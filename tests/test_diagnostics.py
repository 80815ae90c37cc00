"""Structural/semantic attention measures on hand-made attention patterns and a tiny model."""

import json

import jax
import numpy as np
import pytest

from aoarm import orders
from aoarm.tools import diagnostics

from helpers import init, tiny


def _setup(L=6):
  sigma = np.array([[3, 0, 5, 1, 4, 2]], np.int32)
  own = np.asarray(orders.own_positions(sigma))  # [-1, 3, 0, 5, 1, 4]
  return sigma, own, np.arange(L)


def test_all_mass_on_most_recent_row_is_structural():
  sigma, own, rows = _setup()
  L = 6
  w = np.zeros((1, 1, L, L))
  w[0, 0, rows, rows] = 1.0  # each row attends only itself (the most recent visible row)
  r = diagnostics.masses(w, rows, sigma, own)
  assert r["structural"][1][0] == pytest.approx(1.0)
  np.testing.assert_allclose(r["uniform"][1], np.mean(1 / (rows + 1)))
  assert r["semantic"][1][0] < 1.0


def test_all_mass_on_row_nearest_target_is_semantic():
  sigma, own, rows = _setup()
  L = 6
  w = np.zeros((1, 1, L, L))
  for t in rows:
    d = np.abs(sigma[0, t] - own[0, : t + 1])
    w[0, 0, t, int(np.argmin(d[::-1]) * -1 + t)] = 1.0  # nearest; ties -> the more recent
  r = diagnostics.masses(w, rows, sigma, own)
  assert r["semantic"][1][0] == pytest.approx(1.0)
  assert r["semantic"][8][0] == pytest.approx(1.0)
  assert r["structural"][8][0] == pytest.approx(1.0)  # every visible row is within 8


def test_uniform_attention_matches_baseline():
  sigma, own, rows = _setup()
  L = 6
  w = np.tril(np.ones((L, L))) / np.arange(1, L + 1)[:, None]
  r = diagnostics.masses(w[None, None], rows, sigma, own)
  for m in diagnostics.MS:
    assert r["structural"][m][0] == pytest.approx(r["uniform"][m])
    assert r["semantic"][m][0] == pytest.approx(r["uniform"][m])


@pytest.mark.parametrize(
  "variant,kw",
  [("two_stream", {}), ("decoupled_rope", {}), ("aogpt", {}), ("two_stream", {"query_layers": 1})],
)
def test_analyse_tiny_model(variant, kw):
  cfg = tiny(variant, seq_len=8, **kw)
  model, params, x, _ = init(cfg)
  sigma = orders.random_orders(jax.random.key(0), 2, 8)
  rows = diagnostics.analyse(model, params, cfg, x, sigma)
  streams = {"query", "content"} if variant == "two_stream" else {"content"}
  assert {r["stream"] for r in rows} == streams
  query_layers = {r["layer"] for r in rows if r["stream"] == "query"}
  assert query_layers == set(range(cfg.first_query_layer, cfg.num_layers)) or not query_layers
  for r in rows:
    for m in diagnostics.MS:
      assert 0 <= r[f"structural_{m}"] <= 1 + 1e-6 and 0 <= r[f"semantic_{m}"] <= 1 + 1e-6
    assert r["structural_8"] == pytest.approx(1.0)  # L = 8: every row is within 8
  summary = diagnostics.summarize(rows)
  assert set(summary) == streams


def test_per_window_masses_average_to_the_batch_means():
  cfg = tiny("decoupled_rope", seq_len=8)
  model, params, x, _ = init(cfg, batch=3)
  sigma = orders.random_orders(jax.random.key(0), 3, 8)
  flat = diagnostics.analyse(model, params, cfg, x, sigma)
  per = diagnostics.analyse(model, params, cfg, x, sigma, per_window=True)
  for a, b in zip(flat, per, strict=True):
    assert b["semantic_2"].shape == (3,)
    assert a["semantic_2"] == pytest.approx(float(b["semantic_2"].mean()))
  s = diagnostics.summarize(per)["content"]
  assert s["semantic_2"] == pytest.approx(diagnostics.summarize(flat)["content"]["semantic_2"])
  per_window = np.mean([r["semantic_2"] for r in per], axis=0)  # heads and layers, per window
  assert s["semantic_2_stderr"] == pytest.approx(per_window.std(ddof=1) / np.sqrt(3))
  assert "uniform_2_stderr" not in s  # uniform attention's mass is the same in every window


@pytest.mark.slow
def test_a_checkpoints_diagnostics_carry_standard_errors_over_windows(tmp_path):
  from aoarm.run import modes

  from helpers import tiny_run_config

  wd = str(tmp_path / "run")
  assert modes.train(tiny_run_config("two_stream", **{"train.num_steps": 4}), wd) == 0
  r = diagnostics.run(wd, num_windows=12, batch=5)  # batches of 5, 5 and 2 windows
  assert r["num_windows"] == 12
  for stream in ("query", "content"):
    s = r["summary"][stream]
    for m in diagnostics.MS:
      for kind in ("structural", "semantic"):
        assert s[f"{kind}_{m}_stderr"] >= 0
    assert s["semantic_1_stderr"] > 0  # windows differ
  head = r["per_head"][0]
  assert 0 < head["semantic_1_stderr"] < 0.5
  saved = json.loads((tmp_path / "run" / "diagnostics" / "step_4.json").read_text())
  assert saved["summary"] == r["summary"]
