"""The config an eval or sample runs on: the run's own (its saved `config.json`), with the command
line changing only what evaluating or sampling may change. So `--mode=eval` needs no repeat of
the training overrides, and a forgotten one (`data.source=markov`) cannot evaluate the
checkpoint on other data; a command line that differs elsewhere is named in one warning line."""

import json
import logging
import os

from aoarm.config import key_table

log = logging.getLogger("aoarm")


def saved(workdir: str) -> dict | None:
  """The run's saved config.json, flat ({'a.b': value}), or None where there is none."""
  path = os.path.join(workdir or "", "config.json")
  if not workdir or not os.path.isfile(path):
    return None
  with open(path) as f:
    return key_table.flat(json.load(f))


def from_workdir(workdir: str, overrides: dict, mode: str):
  """The config of the run in `workdir` for --mode=eval/sample without --config: the defaults of
  its variant (keys newer than the run), its saved config.json over them, then the command
  line's `--config.KEY=VALUE` (`overrides`, text), each cast to its key's type."""
  from aoarm.config import config_lib
  from aoarm.infra.errors import UserError

  run = saved(workdir)
  if run is None:
    where = os.path.join(workdir or ".", "config.json")
    raise UserError(
      f"--mode={mode} without --config reads the run's {where}, which is missing: "
      "train there first, or pass --config=configs/<variant>.py"
    )
  cfg = config_lib.base_config(run.get("model.variant", ""), None)
  have = key_table.flat(cfg)
  for key, value in run.items():  # a key this version no longer has is left out
    if key in have:
      _set(cfg, key, value)
  for key, text in overrides.items():
    if key not in have:
      raise UserError(f"unknown config key {key} (in --config.{key}={text})")
    try:
      _set(cfg, key, config_lib.cast_like(have[key], text))
    except ValueError:
      raise UserError(f"--config.{key}={text!r} is not a {type(have[key]).__name__}") from None
  return cfg


def _set(cfg, key: str, value):
  node = cfg
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  with node.ignore_type():
    node[leaf] = value


def for_reading(cfg, workdir: str, mode: str, explicit: set | None = None):
  """`cfg` with every key an eval may not set (`key_table.may_change_at_eval`) replaced by the
  run's saved value (a key the saved config lacks keeps the command line's: configs gain keys over
  time). `explicit` (the command line's own --config.KEY set): a key an eval may set that it does
  not name also takes the run's value, so a config file's eval settings (configs/ar.py's
  eval.l2r=False) or empty data paths never replace the run's; None (a library caller): `cfg`'s
  own such keys are taken as given.
  No saved config: `cfg`."""
  saved_flat = saved(workdir)
  if saved_flat is None:
    return cfg
  out = cfg.copy_and_resolve_references()
  ignored = []
  for key, now in key_table.flat(cfg).items():
    if key not in saved_flat or saved_flat[key] == now:
      continue
    if key_table.may_change_at_eval(key) and (explicit is None or key in explicit):
      continue
    saved_value = saved_flat[key]
    _set(out, key, saved_value)
    if key_table.may_change_at_eval(key):
      continue  # the run's own eval/sample setting: the config file's is not a choice
    ignored.append(f"{key}={now!r} (run: {saved_value!r})")
  if ignored:
    log.warning(
      "--mode=%s uses the run's saved config.json (--workdir alone is enough); the command "
      "line differs in %s, ignored",
      mode,
      ", ".join(ignored),
    )
  return out
