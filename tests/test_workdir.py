"""The pieces that keep a run safe, one at a time: atomic writes, the training lock, the verified
token cache, and a restore without tree metadata."""

import json
import os

import jax
import numpy as np
import pytest

from aoarm.data import cache, tokenizers
from aoarm.infra import workdir
from aoarm.infra.checkpointing import Checkpointer
from aoarm.infra.errors import UserError
from aoarm.run import modes, setup
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig

from helpers import tiny_run_config


def test_write_atomic_keeps_the_old_file_when_the_disk_fills(tmp_path, monkeypatch):
  path = tmp_path / "vocab.json"
  tokenizers.save(tokenizers.CharTokenizer("abc"), str(path))
  good = path.read_text()

  def full(fd):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(OSError, match="No space"):
    tokenizers.save(tokenizers.CharTokenizer("abcdef"), str(path))
  assert path.read_text() == good
  assert os.listdir(tmp_path) == ["vocab.json"]  # no temporary file left behind


def test_damaged_vocab_json_names_the_file(tmp_path):
  for content in ("", '{"kind": "char"', '{"kind": "nope"}', "[]"):
    (tmp_path / "vocab.json").write_text(content)
    with pytest.raises(UserError, match="vocab.json is damaged"):
      tokenizers.load(str(tmp_path / "vocab.json"))


def test_lock_is_exclusive_and_released(tmp_path):
  wd = str(tmp_path / "run")
  with workdir.TrainLock(wd):
    with open(os.path.join(wd, workdir.LOCK_NAME)) as f:
      assert json.load(f)["pid"] == os.getpid()
    with pytest.raises(UserError, match=f"pid {os.getpid()} on host"):
      workdir.TrainLock(wd).acquire()
  assert not os.path.exists(os.path.join(wd, workdir.LOCK_NAME))
  with workdir.TrainLock(wd):  # free again
    pass


def test_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
  os.makedirs(tmp_path / "run")
  (tmp_path / "run" / workdir.LOCK_NAME).write_text('{"host": "h", "pid": 999999}')
  with workdir.TrainLock(str(tmp_path / "run")) as lock:
    assert lock._fd is not None


def test_check_dir(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(UserError, match="is not a directory"):
    workdir.check_dir(str(tmp_path / "f"), "--workdir")
  with pytest.raises(UserError, match="cannot be created"):
    workdir.check_dir(str(tmp_path / "f" / "sub"), "--workdir")
  workdir.check_dir(str(tmp_path / "new" / "deeper"), "--workdir")
  assert os.listdir(tmp_path) == ["f"]  # the check writes nothing that stays


def _damage_zeros(p):
  np.save(p, np.zeros_like(np.load(p)))


def _damage_truncate(p):
  with open(p, "r+b") as f:
    f.truncate(os.path.getsize(p) // 2)


def _damage_garbage(p):
  with open(p, "wb") as f:
    f.write(b"\x00garbage" * 10)


@pytest.mark.parametrize("damage", [_damage_zeros, _damage_truncate, _damage_garbage])
def test_damaged_token_cache_is_rebuilt(tmp_path, damage, caplog):
  tok = tokenizers.CharTokenizer("abc ")
  text = "abc cab bca " * 50
  ids, digest, write = cache.cached_encode(tok, text, "train", str(tmp_path))
  write()
  (npy,) = [str(p) for p in tmp_path.glob("*.npy")]
  again, digest2, noop = cache.cached_encode(tok, text, "train", str(tmp_path))
  assert digest2 == digest and np.array_equal(again, ids)  # a good cache is used as it is
  damage(npy)
  caplog.set_level("WARNING")
  fixed, digest3, write = cache.cached_encode(tok, text, "train", str(tmp_path))
  assert np.array_equal(fixed, ids) and digest3 == digest
  assert any("not used" in r.message for r in caplog.records)
  write()
  assert cache._verified(npy, npy[:-4] + ".json", cache.source_sha256(tok, text))[0] is not None


@pytest.mark.slow  # trains a run
def test_restore_without_tree_metadata_is_bitwise_the_same(tmp_path):
  wd = str(tmp_path / "run")
  c = tiny_run_config()
  assert modes.train(c, wd) == 0
  run = setup.prepare(c, wd, "eval")
  trainer = Trainer(TrainConfig.from_config(c), run.mcfg, run.mesh)
  ck = Checkpointer(run.ckpt_dir, read_only=True)
  want, _ = ck.restore(12, trainer.abstract_state)
  os.remove(os.path.join(run.ckpt_dir, "12", "state", "_METADATA"))
  got, _ = ck.restore(12, trainer.abstract_state)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))


def test_resume_ignores_keys_that_one_version_of_the_config_lacks():
  """A checkpoint written before a config key existed (or after one was removed) still resumes:
  only keys both configs have are compared."""
  from aoarm.config import config_lib, resume

  cfg = config_lib.base_config("two_stream", "runlocal")
  saved = cfg.to_dict()
  del saved["model"]["kernels"]["qkv"], saved["train"]["compile_cache"]
  saved["model"]["retired_knob"] = 3
  saved["model"]["norm_impl"] = "pallas"  # an old name of model.kernels.norm: not the maths
  meta = {"step": 4, "config": saved, "data": {"train": "abc"}}
  resume.check(meta, cfg, "abc", "/ckpt")  # no error
  saved["seed"] = 5
  with pytest.raises(UserError, match="seed: checkpoint 5 -> now 0"):
    resume.check(meta, cfg, "abc", "/ckpt")
  with pytest.raises(UserError, match="training data"):
    resume.check(dict(meta, config=cfg.to_dict()), cfg, "abd", "/ckpt")


def test_a_cache_that_cannot_be_written_only_warns(tmp_path, caplog):
  (tmp_path / "f").write_text("in the way")
  tok = tokenizers.CharTokenizer("ab")
  ids, _, write = cache.cached_encode(tok, "abba" * 10, "train", str(tmp_path / "f" / "cache"))
  caplog.set_level("WARNING")
  write()
  assert any("not written" in r.message for r in caplog.records)
  assert len(ids) == 40
