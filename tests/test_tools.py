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


@pytest.mark.parametrize("tool", ["aoarm.report", "aoarm.flops", "aoarm.diagnostics"])
def test_help(tool):
  res = _run(tool, "--help")
  assert res.returncode == 0 and "usage:" in res.stdout


def test_report_of_a_missing_folder():
  res = _run("aoarm.report", "/nonexistent/sweep")
  assert res.returncode == 2
  assert res.stderr.strip() == "aoarm: error: /nonexistent/sweep is not a directory"


def test_flops_of_a_config():
  res = _run("aoarm.flops", "--config=configs/two_stream.py:runlocal", "--vocab_size=27")
  assert res.returncode == 0, res.stderr
  assert res.stdout.startswith("two_stream: 2 layers, d=64, L=64, V=27;")
  bad = _run("aoarm.flops", "--config=configs/nope.py")
  assert bad.returncode == 2 and "configs/nope.py is not a file" in bad.stderr


def test_diagnostics_refuse_mdm_before_any_restore(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model": {"variant": "mdm"}}))
  res = _run("aoarm.diagnostics", f"--workdir={tmp_path}")  # no checkpoint: nothing restored
  assert res.returncode == 2
  assert res.stderr.strip().endswith("mdm has no generation order: structural recency is undefined")
