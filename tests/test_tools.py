"""The tools around the trainer: each takes --help, ends bad input in one line with exit 2, and
refuses what it cannot do before any restore."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _run(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
    [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
  )


TOOLS = ["aoarm.tools.report", "aoarm.run.flops", "aoarm.tools.diagnostics", "aoarm.tools.gen_eval"]
TOOLS += ["aoarm.tools.frontier_plot", "aoarm.tools.runs"]


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool):
  res = _run(tool, "--help")
  assert res.returncode == 0 and "usage:" in res.stdout


def test_sweep_help_and_a_missing_config():
  sweep = [sys.executable, "launch/sweep.py"]
  res = subprocess.run([*sweep, "--help"], capture_output=True, text=True, cwd=ROOT)
  assert res.returncode == 0 and "usage:" in res.stdout
  bad = [*sweep, "--config=configs/nope.py:runlocal", "--sweep_dir=/tmp/x"]
  res = subprocess.run(bad, capture_output=True, text=True, cwd=ROOT)
  assert res.returncode == 2 and res.stderr.strip().endswith("no such file configs/nope.py")


def test_sweep_passes_its_config_arg_to_every_run():
  """`configs/length_sweep.py:runlocal` (the CPU-sized sweep) reaches each run's config arg."""
  cmd = [sys.executable, "launch/sweep.py", "--config=configs/length_sweep.py:runlocal"]
  res = subprocess.run(
    [*cmd, "--sweep_dir=/tmp/aoarm_sweep_dry", "--dry_run", "--only=^mdm_seq_len128"],
    capture_output=True,
    text=True,
    cwd=ROOT,
  )
  assert res.returncode == 0, res.stderr
  assert "length_sweep.py:runlocal,variant=mdm,seq_len=128,seed=0" in res.stdout


def test_report_of_a_missing_folder():
  res = _run("aoarm.tools.report", "/nonexistent/sweep")
  assert res.returncode == 2
  assert res.stderr.strip() == "aoarm: error: /nonexistent/sweep is not a directory"


def test_flops_of_a_config():
  res = _run("aoarm.run.flops", "--config=configs/two_stream.py:runlocal", "--vocab_size=27")
  assert res.returncode == 0, res.stderr
  assert res.stdout.startswith("two_stream: 2 layers, d=64, L=64, V=27;")
  bad = _run("aoarm.run.flops", "--config=configs/nope.py")
  assert bad.returncode == 2 and "configs/nope.py is not a file" in bad.stderr


def test_diagnostics_refuse_mdm_before_any_restore(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model": {"variant": "mdm"}}))
  res = _run("aoarm.tools.diagnostics", f"--workdir={tmp_path}")  # no checkpoint: nothing restored
  assert res.returncode == 2
  assert res.stderr.strip().endswith("mdm has no generation order: structural recency is undefined")


def test_runs_lists_every_run_with_what_differs(tmp_path):
  """`python -m aoarm.tools.runs DIR`: a row per run, the keys that differ between runs, the newest
  held-out result (eval JSON, else the in-training eval marked ~), and the curves' plot."""
  for name, lr, with_json in (("a", 0.001, True), ("b", 0.002, False)):
    d = tmp_path / "sweep" / name
    (d / "eval").mkdir(parents=True)
    cfg = {"seed": 0, "model": {"variant": "ar"}, "data": {"seq_len": 8}, "opt": {"lr": lr}}
    (d / "config.json").write_text(json.dumps(cfg))
    rows = [{"step": s, "train/loss": 3.0 - s / 10} for s in (1, 2, 3)]
    rows.append({"step": 3, "eval/valid_bits": 2.5})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if with_json:
      e = {"bits_per_token": 2.25, "order": "l2r", "split": "valid", "capped": False}
      (d / "eval" / "step_3.json").write_text(json.dumps(e))
  png = tmp_path / "curves.png"
  res = _run("aoarm.tools.runs", str(tmp_path / "sweep"), f"--plot={png}")
  assert res.returncode == 0, res.stderr
  lines = res.stdout.splitlines()
  assert lines[0] == "| run | variant | L | step | held-out bits | opt.lr |"
  assert lines[2] == "| a | ar | 8 | 3 | 2.2500 l2r valid | 0.001 |"
  assert lines[3] == "| b | ar | 8 | 3 | ~2.5000 | 0.002 |"
  assert png.stat().st_size > 1000
  bad = _run("aoarm.tools.runs", str(tmp_path / "nothing"))
  assert bad.returncode == 2 and "is not a directory" in bad.stderr


@pytest.mark.slow
def test_the_cpu_sized_sweep_runs_without_shared_data(tmp_path):
  """Issue 19: `configs/length_sweep.py:runlocal` trains and evaluates on the pydoc text where
  no data_dir is given (a user's clone has no ../shared)."""
  cmd = [sys.executable, "launch/sweep.py", "--config=configs/length_sweep.py:runlocal"]
  res = subprocess.run(
    [*cmd, f"--sweep_dir={tmp_path}", "--only=^two_stream_seq_len128_seed0$"],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=""),  # one device: as a user's laptop
    timeout=600,
  )
  assert res.returncode == 0 and "[fail]" not in res.stdout, res.stdout + res.stderr
  run = tmp_path / "two_stream_seq_len128_seed0"
  evals = sorted(p.name for p in (run / "eval").iterdir())
  assert evals == ["step_50-w64.json", "step_50-w64.npz"]  # runlocal: capped; per-window file
  again = subprocess.run(
    [*cmd, f"--sweep_dir={tmp_path}", "--only=^two_stream_seq_len128_seed0$"],
    capture_output=True, text=True, cwd=ROOT, timeout=120,
  )  # fmt: skip
  assert again.stdout.startswith("[done]")  # a finished run is not run again


def test_help_lists_every_config_key_and_exits_zero():
  """Issue 36 (7): `--help` of the main command and of the data tool exit 0 and list every
  config key with its default and its comment."""
  from aoarm.config import config_lib, key_table

  keys = key_table.flat(config_lib.base_config("", None))
  for tool in ("aoarm.main", "aoarm.tools.prepare_data"):
    res = _run(tool, "--help")
    assert res.returncode == 0, res.stderr
    listed = {ln.split(" = ")[0].strip() for ln in res.stdout.splitlines() if " = " in ln}
    assert set(keys) <= listed, sorted(set(keys) - listed)
    assert "data.seq_len = 128  # L, tokens per window" in res.stdout


def test_flops_of_a_run_uses_its_own_vocabulary(tmp_path):
  """Issue 36 (7): `flops --config` said V=27 for any run unless told; `--workdir` reads the
  run's own model and vocabulary, and --config without --vocab_size notes the V it assumed."""
  wd = tmp_path / "run"
  wd.mkdir()
  from aoarm.config import config_lib
  from aoarm.data import tokenizers

  cfg = config_lib.base_config("two_stream", "runlocal")
  (wd / "config.json").write_text(cfg.to_json())
  tokenizers.save(tokenizers.CharTokenizer("abcdefghij"), str(wd / "vocab.json"))
  res = _run("aoarm.run.flops", f"--workdir={wd}")
  assert res.returncode == 0 and "V=10;" in res.stdout, res.stdout + res.stderr
  res = _run("aoarm.run.flops", "--config=configs/two_stream.py:runlocal")
  assert "V=27;" in res.stdout and "--workdir=DIR reads a run's own" in res.stderr
