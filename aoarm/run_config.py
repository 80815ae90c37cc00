"""The config an eval or sample runs on: the run's own (its saved `config.json`), with the command
line changing only what evaluating or sampling may change. So `--mode=eval` needs no repeat of
the training overrides, and a forgotten one (`data.source=markov`) cannot evaluate the
checkpoint on other data; a command line that differs elsewhere is named in one warning line."""

import json
import logging
import os

import ml_collections as mlc

log = logging.getLogger("aoarm")

# what an eval or a sample may set for itself (the rest is the run's)
MAY_CHANGE = (
  "eval.",
  "sample.",
  "model.kernels.",
  "model.remat",
  "model.capture_attention",
  "mesh.",
  "train.compile_cache",
  "data.valid_path",  # evaluating a checkpoint on other held-out text is a choice
  "data.test_path",
  "data.cache_dir",
)


def flat(d, prefix="") -> dict:
  """{'a.b': value} of a nested ConfigDict or dict."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict | mlc.ConfigDict):
      out.update(flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def may_change(key: str) -> bool:
  return any(key == p or key.startswith(p) for p in MAY_CHANGE)


def saved(workdir: str) -> dict | None:
  """The run's saved config.json, flat ({'a.b': value}), or None where there is none."""
  path = os.path.join(workdir or "", "config.json")
  if not workdir or not os.path.isfile(path):
    return None
  with open(path) as f:
    return flat(json.load(f))


def for_reading(cfg, workdir: str, mode: str):
  """`cfg` with every key outside MAY_CHANGE replaced by the run's saved value (a key the saved
  config lacks keeps the command line's: configs gain keys over time). No saved config: `cfg`."""
  path = os.path.join(workdir or "", "config.json")
  if not workdir or not os.path.exists(path):
    return cfg
  with open(path) as f:
    saved = flat(json.load(f))
  out = cfg.copy_and_resolve_references()
  ignored = []
  for key, now in flat(cfg).items():
    if may_change(key) or key not in saved or saved[key] == now:
      continue
    node = out
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    with node.ignore_type():
      node[leaf] = saved[key]
    ignored.append(f"{key}={now!r} (run: {saved[key]!r})")
  if ignored:
    log.warning(
      "--mode=%s uses the run's saved config.json; the command line differs in %s, ignored",
      mode,
      ", ".join(ignored),
    )
  return out
