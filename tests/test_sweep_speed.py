"""Issue 32 on the CPU: a sweep runs the seeds of one cell at once (one process each), each seed's
result equal to its solo run, a resumed seed among fresh ones included; every training process
says where its time went (DIR/timing.json)."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = textwrap.dedent(
  """
  from aoarm.config import config_lib

  def get_config(arg=None):
    c = config_lib.base_config("two_stream", arg)  # arg: seed=N
    c.data.source = "markov"
    c.data.markov_tokens = 20_000
    c.data.seq_len = 16
    c.model.update(num_layers=1, d_model=32, num_heads=2, dtype="float32")
    c.train.update(batch_size=8, num_steps=8, log_every=2, eval_batches=1)
    c.opt.update(warmup_steps=2, lr=3e-3)
    c.ckpt.update(every_steps=4, async_save=False)
    c.eval.update(batch_size=8, max_windows=16)
    return c

  def sweep():
    return [{"seed": s} for s in (0, 1, 2)]
  """
)


def _sweep(config, sweep_dir, *flags, timeout=600):
  t0 = time.perf_counter()
  res = subprocess.run(
    [sys.executable, "launch/sweep.py", f"--config={config}", f"--sweep_dir={sweep_dir}", *flags],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  return res, time.perf_counter() - t0


def _result(run_dir):
  """(the final eval's JSON, its per-window NLLs, the training losses by step)."""
  with open(os.path.join(run_dir, "eval", "step_8-w16.json")) as f:
    ev = json.load(f)
  with np.load(os.path.join(run_dir, "eval", "step_8-w16.npz")) as z:
    nll = {k: z[k] for k in z.files}
  losses = {}
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if "train/loss" in row:
        losses[row["step"]] = row["train/loss"]
  return ev, nll, losses


@pytest.mark.slow
def test_seeds_together_equal_their_solo_runs_with_a_resumed_seed_among_them(tmp_path):
  config = tmp_path / "tiny_sweep.py"
  config.write_text(CONFIG)
  together, solo = tmp_path / "together", tmp_path / "solo"
  # seed 1 first trains alone to step 4 and stops (a preempted run), then the whole cell runs
  _sweep(config, together, "--only=seed1$", "--", "--config.train.stop_after=4")
  assert os.listdir(together / "run_seed1" / "ckpt") == ["4"]
  res, _ = _sweep(config, together)
  assert "[together] 3 runs" in res.stdout, res.stdout
  for s in (0, 1, 2):  # each process's output in its own log
    log = (together / "logs" / f"run_seed{s}.log").read_text()
    assert "done: step 8" in log, log[-2000:]
  assert "resum" in (together / "logs" / "run_seed1.log").read_text().lower()
  _sweep(config, solo, "--only=seed[01]$", "--together=1")
  for s in (0, 1):
    ev_t, nll_t, loss_t = _result(together / f"run_seed{s}")
    ev_s, nll_s, loss_s = _result(solo / f"run_seed{s}")
    assert ev_t["nll_per_token"] == ev_s["nll_per_token"]  # bit for bit
    for k in nll_s:
      np.testing.assert_array_equal(nll_t[k], nll_s[k])
    assert {k: v for k, v in loss_t.items() if k > 4 or s != 1} == {
      k: v for k, v in loss_s.items() if k > 4 or s != 1
    }
  a, b = _result(together / "run_seed0")[0], _result(together / "run_seed2")[0]
  assert a["nll_per_token"] != b["nll_per_token"]  # seeds are different runs


def test_a_training_process_says_where_its_time_went(tmp_path):
  from cli import run

  wd = tmp_path / "run"
  t0 = time.perf_counter()
  res = run(wd, "--config.train.num_steps=4", "--config.train.log_every=2", tiny=True)
  wall = time.perf_counter() - t0
  assert res.returncode == 0, res.stderr[-3000:]
  t = json.loads((wd / "timing.json").read_text())
  phases = t["phases_s"]
  assert list(phases) == [
    "start",
    "setup",
    "init",
    "loop_setup",
    "first_step",
    "train",
    "final_eval",
    "close",
  ]
  assert all(v >= 0 for v in phases.values()) and phases["first_step"] > 0
  assert abs(t["total_s"] - sum(phases.values())) < 0.01
  assert 0 < t["total_s"] <= wall + 0.5  # the process's own start counts, nothing before it
  assert t["start_step"] == 0 and t["num_steps"] == 4 and t["exit_code"] == 0
  assert "time: start" in res.stderr


@pytest.mark.slow
def test_the_sweep_cell_benchmark_prints_one_line_per_setting(tmp_path):
  config = tmp_path / "tiny_sweep.py"
  config.write_text(CONFIG)
  res = subprocess.run(
    [sys.executable, "benchmarks/sweep_cell.py", f"--config={config}", "--cell=^run_seed[0-9]$",
     "--seeds=2", f"--dir={tmp_path / 'cell'}", "--paths=xla"],
    cwd=REPO, capture_output=True, text=True, timeout=600,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )  # fmt: skip
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
  assert [r["seeds"] for r in lines] == [1, 2] and {r["path"] for r in lines} == {"xla"}
  cfg = json.loads((tmp_path / "cell" / "seeds2_xla" / "run_seed1" / "config.json").read_text())
  assert cfg["model"]["kernels"]["mlp"] == cfg["model"]["kernels"]["qkv"] == "xla"
  for r in lines:
    assert r["total_s"] > 0 and r["startup_s"] > 0 and r["train_s"] >= 0 and r["eval_s"] > 0
    assert len(r["runs"]) == r["seeds"] and r["run_total_s"] <= r["total_s"] + 1
