"""A run is never lost: each fault the fault attack found, reproduced through the command line.

One small run is trained once (checkpoints at 4, 8, 12) and copied for each test.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from cli import error_lines, expect_error, run, snapshot, spawn, wait_for

from aoarm.infra import workdir as workdir_lib

from helpers import damage_checkpoint_arrays

pytestmark = pytest.mark.slow
BASE = [
  "--config.data.source=markov",
  "--config.data.markov_tokens=20000",
  "--config.data.seq_len=16",
  "--config.train.batch_size=8",
  "--config.train.log_every=4",
  "--config.ckpt.every_steps=4",
  "--config.eval.max_windows=16",
  "--config.eval.batch_size=8",
]


def _steps(wd):
  d = os.path.join(wd, "ckpt")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("base") / "run")
  res = run(wd, *BASE, "--config.train.num_steps=12")
  assert res.returncode == 0, res.stderr[-3000:]
  assert _steps(wd) == [4, 8, 12]
  return wd


@pytest.fixture
def wd(trained, tmp_path):
  out = str(tmp_path / "run")
  shutil.copytree(trained, out)
  return out


def _holds_lock(wd, proc):
  """Wait until `proc` holds the workdir's training lock."""

  def held():
    try:
      with open(os.path.join(wd, workdir_lib.LOCK_NAME)) as f:
        return json.load(f).get("pid") == proc.pid
    except (OSError, ValueError):
      return False

  wait_for(held, proc=proc, what="the lock")


def _ok(res):
  assert res.returncode == 0, res.stderr[-3000:]
  assert "Traceback" not in res.stderr
  return res


# -- 1. a changed setting never wipes a run -------------------------------------------------
@pytest.mark.parametrize(
  "flag, match",
  [
    ("--config.opt.clip_norm=0", "switches gradient clipping off"),
    ("--config.seed=1", "seed: checkpoint 0 -> now 1"),
    ("--config.train.batch_size=16", "train.batch_size: checkpoint 8 -> now 16"),
    ("--config.model.dtype=bfloat16", "model.dtype: checkpoint 'float32' -> now 'bfloat16'"),
    ("--config.order.train=l2r", "order.train: checkpoint 'random' -> now 'l2r'"),
    ("--config.data.markov_tokens=30000", "training data: checkpoint tokens sha256"),
    ("--config.train.num_steps=10", "below the step of the checkpoint"),
  ],
)
def test_changed_setting_is_refused_and_nothing_changes(wd, flag, match):
  expect_error(wd, match, *BASE, "--config.train.num_steps=16", flag)
  assert _steps(wd) == [4, 8, 12]


def test_allowed_changes_resume_loudly(wd):
  res = _ok(run(wd, *BASE, "--config.train.num_steps=16", "--config.opt.lr=0.002"))
  assert "opt.lr: checkpoint 0.001 -> now 0.002" in res.stderr
  assert "resuming from step 12" in res.stderr
  allow = "--config.ckpt.allow_changes=true"
  res = _ok(run(wd, *BASE, "--config.train.num_steps=20", "--config.seed=3", allow))
  assert "(ckpt.allow_changes): seed: checkpoint 0 -> now 3" in res.stderr
  assert _steps(wd) == [12, 16, 20]


def test_checkpoints_without_tree_metadata_still_resume(wd):
  for s in _steps(wd):
    os.remove(os.path.join(wd, "ckpt", str(s), "state", "_METADATA"))
  res = _ok(run(wd, *BASE, "--config.train.num_steps=16"))
  assert "resuming from step 12" in res.stderr
  assert _steps(wd) == [8, 12, 16]


def _damage(wd, step):
  damage_checkpoint_arrays(os.path.join(wd, "ckpt", str(step), "state"))


def test_all_checkpoints_unreadable_stops_without_touching_them(wd):
  for s in _steps(wd):
    _damage(wd, s)
  line = expect_error(wd, "no checkpoint in", *BASE, "--config.train.num_steps=16")
  assert "step 12" in line and "step 4" in line
  assert _steps(wd) == [4, 8, 12]


# -- 3. one trainer per workdir ---------------------------------------------------------------
def test_second_trainer_is_refused_while_the_first_runs(wd):
  first = spawn(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=1000")
  try:
    lock = os.path.join(wd, workdir_lib.LOCK_NAME)
    _holds_lock(wd, first)
    res = run(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=1000")
    assert res.returncode == 2
    (line,) = error_lines(res.stderr)
    assert f"another training run holds {lock} (pid {first.pid} on host" in line
    assert first.poll() is None  # the first run goes on
  finally:
    first.send_signal(signal.SIGTERM)
    out = first.communicate(timeout=120)[0]
  assert first.returncode == 0, out[-3000:]
  assert _steps(wd)[-1] > 12  # it saved where SIGTERM stopped it
  assert not os.path.exists(lock)


def test_stale_lock_of_a_killed_trainer_does_not_block(wd):
  with open(os.path.join(wd, workdir_lib.LOCK_NAME), "w") as f:
    json.dump({"host": "elsewhere", "pid": 999999, "started": "yesterday"}, f)
  _ok(run(wd, *BASE, "--config.train.num_steps=16"))
  assert _steps(wd) == [8, 12, 16]


def test_lock_of_a_killed_process(wd):
  first = spawn(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=1000")
  _holds_lock(wd, first)
  first.kill()
  first.wait(timeout=60)
  assert os.path.exists(os.path.join(wd, workdir_lib.LOCK_NAME))  # left behind by kill -9
  _ok(run(wd, *BASE, "--config.train.num_steps=16"))


# -- 4. an unreadable newest checkpoint, an empty step folder ----------------------------------
def test_damaged_newest_is_moved_aside_and_training_goes_on(wd):
  _damage(wd, 12)
  res = _ok(run(wd, *BASE, "--config.train.num_steps=16"))
  assert "resuming from step 8" in res.stderr
  aside = os.listdir(os.path.join(wd, workdir_lib.ASIDE_DIR))
  assert any(n.startswith("step_12_") and not n.endswith(".txt") for n in aside), aside
  assert _steps(wd) == [8, 12, 16]
  _ok(run(wd, *BASE, "--config.train.num_steps=20"))  # and again: no StepAlreadyExistsError
  assert _steps(wd) == [12, 16, 20]


def test_empty_step_folder_is_not_a_checkpoint(wd):
  os.makedirs(os.path.join(wd, "ckpt", "99"))
  res = _ok(run(wd, *BASE, "--config.train.num_steps=16"))
  assert "resuming from step 12" in res.stderr
  assert _steps(wd) == [8, 12, 16]  # keep=3 real checkpoints: 8 was not deleted for it
  assert any(n.startswith("step_99_") for n in os.listdir(os.path.join(wd, workdir_lib.ASIDE_DIR)))


# -- 5. vocab.json ------------------------------------------------------------------------------
def test_empty_vocab_json_is_restored_from_the_checkpoint(wd):
  path = os.path.join(wd, "vocab.json")
  with open(path) as f:
    good = f.read()
  open(path, "w").close()  # what a full disk left
  res = _ok(run(wd, *BASE, "--mode=eval"))
  assert "vocab.json is damaged" in res.stderr and "checkpoint step 12" in res.stderr
  _ok(run(wd, *BASE, "--config.train.num_steps=16"))
  with open(path) as f:
    assert f.read() == good


# -- 6. the token cache -------------------------------------------------------------------------
def test_zeroed_cache_is_detected_and_rebuilt(wd, tmp_path):
  texts = tmp_path / "texts"
  texts.mkdir()
  (texts / "train.txt").write_text("the quick brown fox jumps over the lazy dog. " * 300)
  (texts / "valid.txt").write_text("a lazy dog jumps over the quick brown fox. " * 40)
  files = [
    "--config.data.source=text_files",
    f"--config.data.train_path={texts / 'train.txt'}",
    f"--config.data.valid_path={texts / 'valid.txt'}",
    "--config.data.seq_len=16",
    "--config.train.batch_size=8",
    "--config.train.num_steps=4",
    "--config.eval.max_windows=0",
    "--config.eval.batch_size=8",
  ]
  run_dir = str(tmp_path / "text_run")
  _ok(run(run_dir, *files))
  before = json.loads(_ok(run(run_dir, *files, "--mode=eval")).stdout)["nll_per_token"]
  import numpy as np

  cache = os.path.join(run_dir, "cache")
  for name in os.listdir(cache):
    if name.endswith(".npy"):
      p = os.path.join(cache, name)
      np.save(p, np.zeros_like(np.load(p)))
  res = _ok(run(run_dir, *files, "--mode=eval"))
  assert "do not match their recorded SHA-256" in res.stderr
  assert json.loads(res.stdout)["nll_per_token"] == before


# -- 7. a read-only workdir ---------------------------------------------------------------------
def test_eval_and_sample_check_their_output_folder_first(wd):
  for mode, folder in (("eval", "eval"), ("sample", "samples")):
    shutil.rmtree(os.path.join(wd, folder), ignore_errors=True)  # training wrote its final eval
    with open(os.path.join(wd, folder), "w") as f:
      f.write("in the way")
    expect_error(wd, "exists and is not a directory", *BASE, f"--mode={mode}")


def _read_only_prefix(path):
  """A command prefix that runs the CLI with `path` mounted read-only, or None if this machine
  cannot do that (root ignores permission bits, so it takes a read-only bind mount)."""
  if os.geteuid() != 0:
    return None
  probe = [
    "unshare",
    "-m",
    "sh",
    "-c",
    f"mount --bind {path} {path} && mount -o remount,bind,ro {path} {path}",
  ]  # noqa: E501
  try:
    ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
  except (OSError, subprocess.SubprocessError):
    ok = False
  if not ok:
    return None
  script = f'mount --bind {path} {path} && mount -o remount,bind,ro {path} {path} && exec "$@"'
  return ["unshare", "-m", "sh", "-c", script, "sh"]


def test_read_only_workdir_fails_before_any_work(wd):
  prefix = _read_only_prefix(wd)
  if prefix is None and os.geteuid() == 0:
    pytest.skip("no read-only bind mount here (needs unshare -m as root)")
  if prefix is None:
    os.chmod(wd, 0o555)
  try:
    for mode in ("eval", "sample", "train"):
      before = snapshot(wd)
      t0 = time.time()
      res = run(wd, *BASE, f"--mode={mode}", "--config.train.num_steps=16", prefix=prefix or ())
      assert res.returncode == 2, res.stderr[-2000:]
      (line,) = error_lines(res.stderr)
      assert "is not writable" in line and "Read-only file system" in line or prefix is None, line
      assert snapshot(wd) == before
      assert time.time() - t0 < 60
  finally:
    os.chmod(wd, 0o755)


# -- hangs: a failed save, Ctrl-C ---------------------------------------------------------------
def test_failed_save_ends_the_process(wd):
  proc = spawn(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=20")
  wait_for(lambda: os.path.isdir(os.path.join(wd, "ckpt", "20")), proc=proc, what="step 20")
  os.rename(os.path.join(wd, "ckpt"), os.path.join(wd, "ckpt_moved"))
  with open(os.path.join(wd, "ckpt"), "w") as f:
    f.write("in the way")
  try:
    out = proc.communicate(timeout=120)[0]
  except subprocess.TimeoutExpired:
    proc.kill()
    raise AssertionError("the trainer did not exit after its checkpoint save failed") from None
  assert proc.returncode == 1, out[-3000:]
  (line,) = error_lines(out)
  assert "checkpoint" in line and "failed" in line and "/ckpt" in line, line


def test_ctrl_c_during_compile_saves_and_exits(wd):
  shutil.rmtree(wd)
  proc = spawn(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=1000")
  wait_for(lambda: os.path.exists(os.path.join(wd, "config.json")), proc=proc, what="start")
  proc.send_signal(signal.SIGINT)  # the first step is compiling now
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 130, out[-3000:]
  assert "Traceback" not in out
  if "nothing new to save" in out:  # the signal came before the first step was dispatched
    assert not os.path.exists(os.path.join(wd, "ckpt"))
    return
  steps = _steps(wd)
  assert len(steps) == 1 and steps[0] < 1000, steps
  res = _ok(run(wd, *BASE, f"--config.train.num_steps={steps[0] + 2}"))
  assert f"resuming from step {steps[0]}" in res.stderr


def test_ctrl_c_mid_training_saves_where_it_stopped(wd):
  proc = spawn(wd, *BASE, "--config.train.num_steps=100000", "--config.ckpt.every_steps=1000")
  metrics = os.path.join(wd, "metrics.jsonl")
  n0 = sum(1 for _ in open(metrics))

  def logged():
    return sum(1 for _ in open(metrics)) >= n0 + 3

  wait_for(logged, proc=proc, what="three logs")
  proc.send_signal(signal.SIGINT)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 130, out[-3000:]
  assert "Traceback" not in out
  assert _steps(wd)[-1] >= 12 + 12 and _steps(wd)[-1] % 1000, _steps(wd)


def test_second_ctrl_c_exits_at_once(tmp_path):
  wd = str(tmp_path / "run")
  big = "--config.data.markov_tokens=4000000"  # seconds of data preparation to interrupt
  proc = spawn(wd, *BASE, big, "--config.train.num_steps=100000")
  for line in proc.stdout:
    if "preparing the run in" in line:
      break
  proc.send_signal(signal.SIGINT)
  time.sleep(0.5)  # two signals at once would reach Python's handler as one
  proc.send_signal(signal.SIGINT)
  t0 = time.time()
  out = proc.communicate(timeout=60)[0]
  assert proc.returncode == 130, out[-3000:]
  assert "second interrupt: exiting now, without saving" in out
  assert time.time() - t0 < 10
  assert not os.path.exists(os.path.join(wd, "ckpt"))


# -- 8. eval and sample need no repeat of the training overrides (issue 19) --------------------
def test_eval_and_sample_through_the_cli_read_the_saved_config(wd):
  """A markov run evaluated and sampled with none of its data overrides: the saved config is
  used (before: 'train split: symbols must be letters a..h'), the ignored keys named once."""
  res = _ok(run(wd, "--mode=eval", "--config.eval.max_windows=8"))
  assert json.loads(res.stdout)["num_windows"] == 8
  assert "data.source='pydoc' (run: 'markov')" in res.stderr
  assert "Given directory is read only" not in res.stderr
  res = _ok(run(wd, "--mode=sample", "--config.sample.num_samples=2"))
  assert "wrote" in res.stdout
