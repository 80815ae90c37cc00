"""train.compile_cache: JAX's persistent compilation cache, on by default for the CLI."""

import os

import jax
import pytest
from cli import run

from aoarm.infra import compile_cache

KEYS = (
  "jax_compilation_cache_dir",
  "jax_persistent_cache_min_compile_time_secs",
  "jax_persistent_cache_min_entry_size_bytes",
)


@pytest.fixture
def restore_jax_config():
  old = {k: jax.config.values[k] for k in KEYS}
  yield
  for k, v in old.items():
    jax.config.update(k, v)


def test_settings(tmp_path, monkeypatch, restore_jax_config):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.cache_dir("auto") == str(tmp_path / "xdg" / "aoarm" / "jax")
  assert compile_cache.enable("off") is None
  path = compile_cache.enable(str(tmp_path / "cc"))
  assert path == str(tmp_path / "cc") and os.path.isdir(path)
  assert jax.config.values["jax_compilation_cache_dir"] == path


def test_a_folder_that_cannot_be_made_only_turns_the_cache_off(tmp_path, restore_jax_config):
  (tmp_path / "f").write_text("a file")
  assert compile_cache.enable(str(tmp_path / "f" / "cache")) is None


@pytest.mark.slow
def test_a_launch_fills_the_cache_and_the_next_one_uses_it(tmp_path):
  cache = tmp_path / "cache"
  flags = ["--config.train.num_steps=2", f"--config.train.compile_cache={cache}"]
  first = run(str(tmp_path / "a"), *flags)
  assert first.returncode == 0, first.stderr[-2000:]
  entries = sorted(os.listdir(cache))
  assert any("train_step" in e for e in entries), entries
  second = run(str(tmp_path / "b"), *flags)
  assert second.returncode == 0, second.stderr[-2000:]
  # The same programs, so their keys are stored already. Only programs that took over a second to
  # compile are stored, and on a loaded machine a small one may cross that line in one launch only:
  # compare the big ones.
  after = sorted(os.listdir(cache))
  assert set(entries) <= set(after)
  big = ("train_step", "init_state")
  assert [e for e in after if any(b in e for b in big)] == [
    e for e in entries if any(b in e for b in big)
  ]
