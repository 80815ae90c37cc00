"""Restoring a run for eval and sample from its workdir alone (issue 36, items 1-2), evals that
never overwrite one another (issue 37, LOSS 1), and the per-window file every eval writes beside
its JSON (issue 31), all through the command line on one small text-file run."""

import json
import os
import pydoc
import shutil

import numpy as np
import pytest
from cli import run

pytestmark = pytest.mark.slow


def _ok(res):
  assert res.returncode == 0, res.stderr[-3000:]
  return res


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
  """A char-level text-file run trained to step 4 with the final eval in the process."""
  root = tmp_path_factory.mktemp("texts")
  text = pydoc.render_doc(json, renderer=pydoc.plaintext) * 3
  (root / "train.txt").write_text(text)
  (root / "valid.txt").write_text(text[: len(text) // 4])
  (root / "other.txt").write_text(text[len(text) // 2 : len(text) // 2 + len(text) // 5])
  wd = str(root / "run")
  _ok(
    run(
      wd,
      "--config.data.source=text_files",
      f"--config.data.train_path={root / 'train.txt'}",
      f"--config.data.valid_path={root / 'valid.txt'}",
      "--config.data.seq_len=16",
      "--config.train.batch_size=8",
      "--config.train.num_steps=4",
      "--config.eval.batch_size=8",
      "--config.eval.max_windows=24",
    )
  )
  return root, wd


@pytest.fixture
def wd(text_run, tmp_path):
  out = str(tmp_path / "run")
  shutil.copytree(text_run[1], out)
  return out


def _eval(wd, name):
  with open(os.path.join(wd, "eval", name)) as f:
    return json.load(f)


def test_training_writes_the_final_eval_and_its_per_window_file(text_run):
  root, wd = text_run
  out = _eval(wd, "step_4-w24.json")
  assert out["data"]["path"] == str(root / "valid.txt") and out["data"]["tokens_sha256"]
  with np.load(os.path.join(wd, "eval", "step_4-w24.npz")) as z:
    assert list(z["window_index"]) == list(range(24)) and int(z["seq_len"]) == 16
    for order in ("random", "l2r"):
      assert np.isclose(z[f"nll_{order}"].mean(), out["by_order"][order]["nll_per_token"])


def test_eval_and_sample_need_only_the_workdir(wd):
  """No --config: the run's saved config (its data paths included) is used; --config.KEY=VALUE
  still sets eval and sample keys."""
  before = _eval(wd, "step_4-w24.json")
  _ok(run(wd, "--mode=eval", config=None, tiny=False))
  assert _eval(wd, "step_4-w24.json")["nll_per_token"] == before["nll_per_token"]
  _ok(run(wd, "--mode=eval", "--config.eval.max_windows=8", config=None, tiny=False))
  assert _eval(wd, "step_4-w8.json")["num_windows"] == 8
  res = _ok(run(wd, "--mode=sample", "--config.sample.num_samples=2", config=None, tiny=False))
  assert "wrote " in res.stdout
  bad = run(wd, "--mode=eval", "--config.eval.nope=1", config=None, tiny=False)
  assert bad.returncode == 2 and "unknown config key eval.nope" in bad.stderr
  none = run(wd + "_missing", "--mode=eval", config=None, tiny=False)
  assert none.returncode == 2 and "config.json, which is missing" in none.stderr


def test_a_config_file_never_replaces_the_runs_eval_settings_or_data(wd):
  """configs/ar.py sets eval.l2r=False and no data paths: evaluating a two_stream text-file run
  with it still scores the run's valid file, both orders, in the run's default file name, and
  the warning says --workdir alone is enough."""
  res = _ok(run(wd, "--mode=eval", config="configs/ar.py:runlocal"))
  assert "--workdir alone is enough" in res.stderr
  out = _eval(wd, "step_4-w24.json")
  assert set(out["by_order"]) == {"random", "l2r"} and out["variant"] == "two_stream"
  assert not os.path.exists(os.path.join(wd, "eval", "step_4-w24-no_l2r.json"))


def test_an_eval_on_other_text_gets_its_own_file(text_run, wd):
  root, _ = text_run
  own = _eval(wd, "step_4-w24.json")
  other = root / "other.txt"
  _ok(run(wd, "--mode=eval", f"--config.data.valid_path={other}", config=None, tiny=False))
  names = sorted(os.listdir(os.path.join(wd, "eval")))
  (tagged,) = [n for n in names if n.startswith("step_4-w24-d") and n.endswith(".json")]
  out = _eval(wd, tagged)
  assert (
    out["data"]["path"] == str(other)
    and out["data"]["tokens_sha256"] != own["data"]["tokens_sha256"]
  )
  assert _eval(wd, "step_4-w24.json") == own  # the run's own eval is untouched


def test_an_eval_of_k_orders_keeps_each_orders_nll_per_window(wd):
  """Issue 31 (1): with K > 1 orders (mdm: masking rates) the per-window file also holds each
  one's NLL (windows x K), whose mean over K is the window's NLL; one order: no such array."""
  _ok(run(wd, "--mode=eval", "--config.eval.num_orders=3", config=None, tiny=False))
  names = sorted(os.listdir(os.path.join(wd, "eval")))
  npz = [n for n in names if n.endswith(".npz") and "-k3" in n]
  assert len(npz) == 1, names
  with np.load(os.path.join(wd, "eval", npz[0])) as z:
    each, mean = z["nll_random_each"], z["nll_random"]
    assert each.shape == (24, 3) and "nll_l2r_each" not in z
    np.testing.assert_allclose(each.mean(axis=1), mean, rtol=1e-6)
    assert np.abs(each - mean[:, None]).max() > 0  # three orders, three different NLLs
