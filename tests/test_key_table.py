"""The one table of config keys (`aoarm.config.key_table`): it classes every key of every config,
names only keys that exist, and the lists derived from it (what an eval may set, what a resume
refuses or notes, what the report groups by) say what the table says."""

import glob
import importlib.util
import os

import pytest

from aoarm import models
from aoarm.config import config_lib, key_table
from aoarm.models import ModelConfig
from aoarm.tools import report_labels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _config_keys() -> set:
  keys = set()
  for v in models.VARIANTS:
    keys |= set(key_table.flat(config_lib.base_config(v, None)))
  for path in CONFIG_FILES:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    keys |= set(key_table.flat(mod.get_config(None)))
  return keys


KEYS = _config_keys()


def test_every_key_is_classed():
  for key in sorted(KEYS):
    assert key_table.class_of(key) in key_table.CLASSES, key


def test_the_table_names_only_keys_that_exist():
  for name, cls, resume in key_table.TABLE:
    hit = [k for k in KEYS if (k.startswith(name) if name.endswith(".") else k == name)]
    assert hit, f"key_table.TABLE names {name}, which no config has"
    assert cls in key_table.CLASSES and resume in (key_table.REFUSE, key_table.NOTE, "")
  for old, new in key_table.LEGACY.items():
    assert old not in KEYS and new in KEYS, (old, new)


def test_an_unclassed_key_is_an_error():
  with pytest.raises(KeyError, match="not classed"):
    key_table.class_of("brand_new_section.knob")


def test_legacy_names_are_classed_as_their_new_names():
  for old, new in key_table.LEGACY.items():
    assert key_table.class_of(old) == key_table.class_of(new) == key_table.IMPLEMENTATION


@pytest.mark.parametrize(
  "key, cls, at_eval, resume",
  [
    ("seed", "experiment", False, "refuse"),
    ("model.d_model", "experiment", False, "refuse"),
    ("model.kernels.mlp", "implementation", True, ""),
    ("model.remat", "implementation", True, ""),
    ("order.train", "experiment", False, "refuse"),
    ("opt.lr", "experiment", False, "note"),
    ("train.num_steps", "experiment", False, "note"),
    ("train.batch_size", "experiment", False, "refuse"),
    ("data.seq_len", "experiment", False, "refuse"),
    ("data.tokenizer", "experiment", False, ""),  # the training tokens' SHA-256 decides
    ("data.valid_path", "eval", True, ""),
    ("data.cache_dir", "implementation", True, ""),
    ("eval.num_orders", "eval", True, ""),
    ("sample.temperature", "eval", True, ""),
    ("mesh.fsdp", "implementation", True, ""),
    ("train.compile_cache", "implementation", True, ""),
    ("ckpt.keep", "logging", False, ""),
    ("train.log_every", "logging", False, ""),
  ],
)
def test_what_each_class_means(key, cls, at_eval, resume):
  assert key_table.class_of(key) == cls
  assert key_table.may_change_at_eval(key) == at_eval
  assert key_table.on_resume(key) == resume


def test_the_report_groups_by_the_experiment_keys_only():
  """Every key the table calls `experiment` splits report rows unless the label names it or it
  is an axis (seed, L); nothing else does."""
  for key in sorted(KEYS):
    axis = key in ("seed", "data.seq_len") or key in report_labels.LABEL_KEYS
    experiment = key_table.class_of(key) == key_table.EXPERIMENT
    assert report_labels.ignored(key) == (axis or not experiment), key


def test_the_label_defaults_are_the_base_configs():
  """`report_labels.label` leaves out a model option at ModelConfig's default: that default must
  be the one every config starts from."""
  flat = key_table.flat(config_lib.base_config("two_stream", None))
  for key, field in report_labels.MODEL_OPTIONS.items():
    assert flat[key] == getattr(ModelConfig, field), key
    assert key in report_labels.LABEL_KEYS


def test_one_flattener():
  nested = {"a": {"b": 1, "c": {"d": "x"}}, "e": 2.0}
  assert key_table.flat(nested) == {"a.b": 1, "a.c.d": "x", "e": 2.0}
  cfg = config_lib.base_config("ar", None)
  assert key_table.flat(cfg)["model.kernels.mlp"] == cfg.model.kernels.mlp
