"""The one table of config rules: it covers every key, in both directions, and each rule refuses
what lies just outside its range."""

import glob
import importlib.util
import math
import os

import pytest

from aoarm.config import config_check, config_lib, key_table
from aoarm.infra.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
@pytest.mark.parametrize("arg", ["", "runlocal"])
def test_every_config_file_passes_and_every_key_has_a_rule(path, arg):
  cfg = _load(path).get_config(arg or None)
  assert set(key_table.flat(cfg)) == set(config_check.RULES)
  config_check.validate(cfg, "cpu")


def test_a_new_key_without_a_rule_is_refused():
  cfg = config_lib.base_config("ar", None)
  cfg.train.new_knob = 3
  with pytest.raises(UserError, match="unknown config key train.new_knob"):
    config_check.validate(cfg)


def _outside(rule):
  """Values the rule must refuse."""
  if isinstance(rule, config_check.Num):
    out = [] if rule.integer else [math.nan, math.inf, -math.inf]
    step = 1 if rule.integer else 1e-3
    if math.isfinite(rule.lo):
      out.append(rule.lo if rule.open_lo else rule.lo - step)
    if math.isfinite(rule.hi):
      out.append(rule.hi if rule.open_hi else rule.hi + step)
    return [v for v in out if v not in rule.also]
  if isinstance(rule, config_check.Choice):
    return ["bogus"]
  if isinstance(rule, config_check.Bool):
    return ["yes"]
  return [3]  # Text: not a string


@pytest.mark.parametrize("key", sorted(config_check.RULES))
def test_each_rule_refuses_outside_its_range(key):
  for bad in _outside(config_check.RULES[key]):
    cfg = key_table.flat(config_lib.base_config("two_stream", None))
    cfg[key] = bad
    with pytest.raises(UserError, match=f"config.{key} "):
      config_check.validate(_nest(cfg))


def _nest(flat):
  out = {}
  for key, v in flat.items():
    node = out
    *parents, last = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = v
  return _Dict(out)


class _Dict(dict):
  """Attribute access over a nested dict, as validate reads a ConfigDict."""

  def __getattr__(self, name):
    v = self[name]
    return _Dict(v) if isinstance(v, dict) else v


def test_cudnn_needs_a_gpu():
  cfg = config_lib.base_config("ar", None)
  cfg.model.kernels.attention = "cudnn"
  config_check.validate(cfg, "gpu")
  with pytest.raises(UserError, match="needs a GPU; this backend is tpu"):
    config_check.validate(cfg, "tpu")
