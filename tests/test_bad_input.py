"""Bad input ends with a one-line error naming the problem, a non-zero exit, and the workdir as
it was — through the real command line."""

import os
import subprocess
import sys

import pytest

from aoarm import experiment

from helpers import tiny_run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(path):
  if not os.path.exists(path):
    return None
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      st = os.stat(p)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
  return out


def _cli(workdir, *flags, config="configs/two_stream.py:runlocal"):
  args = [sys.executable, "-m", "aoarm.main", f"--config={config}", f"--workdir={workdir}"]
  args += ["--config.model.num_layers=1", "--config.model.d_model=32", *flags]
  return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def _expect_error(workdir, match, *flags, **kw):
  before = _snapshot(workdir)
  res = _cli(workdir, *flags, **kw)
  assert res.returncode != 0
  lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("aoarm: error:")]
  assert len(lines) == 1, res.stderr[-3000:]
  assert match in lines[0], lines[0]
  assert "Traceback" not in res.stderr, res.stderr[-3000:]
  assert _snapshot(workdir) == before
  return lines[0]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
  d = tmp_path_factory.mktemp("texts")
  good = "the quick brown fox jumps over the lazy dog. " * 200
  (d / "train.txt").write_text(good)
  (d / "valid.txt").write_text(good[:2000])
  (d / "other.txt").write_text(good.upper())
  (d / "empty.txt").write_text("")
  (d / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 50)
  return d


def _files(texts, train="train.txt", valid="valid.txt"):
  return [
    "--config.data.source=text_files",
    f"--config.data.train_path={texts / train}",
    f"--config.data.valid_path={texts / valid}",
  ]


def test_unknown_variant(tmp_path):
  _expect_error(str(tmp_path / "w"), "'transformerx'", "--config.model.variant=transformerx")


def test_bad_config_file_arg_or_key(tmp_path):
  _expect_error(str(tmp_path / "w"), "configs/nope.py", config="configs/nope.py")
  _expect_error(str(tmp_path / "w"), "unknown config arg 'seqlen'", config="configs/ar.py:seqlen=3")
  _expect_error(str(tmp_path / "w"), "unknown config key", "--config.train.batchsize=3")
  _expect_error(str(tmp_path / "w"), "invalid literal", "--config.train.batch_size=abc")


def test_missing_and_empty_data_file(tmp_path, texts):
  _expect_error(str(tmp_path / "w"), "not found", *_files(texts, train="nope.txt"))
  _expect_error(str(tmp_path / "w"), "empty", *_files(texts, valid="empty.txt"))


def test_non_utf8_text(tmp_path, texts):
  _expect_error(str(tmp_path / "w"), "not UTF-8", *_files(texts, train="latin1.txt"))


def test_bad_seq_len(tmp_path, texts):
  _expect_error(str(tmp_path / "w"), "seq_len", *_files(texts), "--config.data.seq_len=1")
  _expect_error(
    str(tmp_path / "w"), "seq_len=100000 is larger", *_files(texts), "--config.data.seq_len=100000"
  )


def test_batch_and_mesh_vs_devices(tmp_path):
  # the test process (and so this child) has 8 fake CPU devices
  _expect_error(
    str(tmp_path / "w"), "batch_size=12 is not divisible by the 8", "--config.train.batch_size=12"
  )
  _expect_error(str(tmp_path / "w"), "needs 16 devices", "--config.mesh.data=16")


def test_restore_with_other_vocabulary_or_shape(tmp_path, texts):
  wd = str(tmp_path / "run")
  c = tiny_run_config()
  c.data.update(
    source="text_files", train_path=str(texts / "train.txt"), valid_path=str(texts / "valid.txt")
  )
  c.train.num_steps = 4
  assert experiment.train(c, wd) == 0
  common = _files(texts) + [
    "--config.data.seq_len=16",
    "--config.model.num_heads=2",
    "--config.model.dtype=float32",
  ]
  _expect_error(
    wd, "different vocabulary", *_files(texts, "other.txt", "other.txt"), "--config.data.seq_len=16"
  )
  _expect_error(wd, "d_model: checkpoint 32 vs config 64", *common, "--config.model.d_model=64")
  _expect_error(wd, "different model shape", *common, "--config.model.num_layers=3")
