"""What a run is, for a sweep report: its variant label (the model options, training order and
equal-compute reference that are not the variant's own) and its experiment (the config keys
the key table classes as `experiment`, seed and L left out), and each report row's final
label, naming the settings in which experiments of one label differ."""

import collections
import functools
import json

from aoarm import models
from aoarm.config import config_lib, key_table

# the experiment keys a row's label names where they differ from their default (ModelConfig's,
# which equal base_config's: tests/test_config_check.py), so they are not listed again as
# "other settings"
LABEL_KEYS = (
  "model.variant",
  "model.rope.target_heads",
  "model.rope.order_dims",
  "model.query_layers",
  "model.own_positions",
  "model.ada_gate_init",
  "model.ada_cond_std",
  "order.train",
  "order.l2r_prob",
  "train.compute_of",
)
MODEL_OPTIONS = {  # flat key -> ModelConfig field holding its default
  "model.rope.target_heads": "target_heads",
  "model.rope.order_dims": "order_dims",
  "model.query_layers": "query_layers",
  "model.own_positions": "own_positions",
  "model.ada_gate_init": "ada_gate_init",
  "model.ada_cond_std": "ada_cond_std",
}


def label(cfg_model: dict, cfg_order: dict | None = None, cfg_train: dict | None = None) -> str:
  """The variant, with any model option that is not its default (the single-stream probes',
  the second stream's depth, aogpt's), its training order where that is not the variant's
  own (random orders; left to right for `ar`), and an equal-compute arm's reference."""
  v = cfg_model["variant"]
  own = "random" if models.traits(v).random_orders else "l2r"
  order = (cfg_order or {}).get("train", own) if models.traits(v).has_order else own
  if order == "mixture":
    order = f"mixture, l2r_prob={cfg_order.get('l2r_prob')}"
  suffix = f" (train order: {order})" if order != own else ""
  given = key_table.flat({"model": cfg_model})
  for key, field in MODEL_OPTIONS.items():
    default = getattr(models.ModelConfig, field)
    if given.get(key, default) != default:
      v += f" ({key.split('.')[-1]}={given[key]})"
  other = (cfg_train or {}).get("compute_of", "")
  if other:
    v += f" (equal compute: {other}'s FLOPs)"
  return v + suffix


def ignored(key: str) -> bool:
  """Keys that do not make a run the experiment it is: every key the table does not class as
  `experiment` (`aoarm.config.key_table`), the seed and L (the table's own axes) and the keys
  the label names."""
  if key in ("seed", "data.seq_len") or key in LABEL_KEYS:
    return True
  try:
    return key_table.class_of(key) != key_table.EXPERIMENT
  except KeyError:  # a key of an older or newer aoarm: not this version's experiment
    return True


@functools.cache
def _defaults(variant: str) -> dict:
  """The flat base config of `variant`: what a run saved before a key existed did (a new option's
  default is the behaviour before it), so older and newer runs of one experiment group alike."""
  try:
    return key_table.flat(config_lib.base_config(variant, None))
  except (KeyError, ValueError):  # a variant this version does not know: nothing to fill
    return {}


def experiment(cfg: dict) -> tuple:
  """The settings that make a run the experiment it is, seed and table axes left out, and the
  keys that mean nothing in this run (`key_table.applies`: a char-level run's tokenizer keys);
  a key its config.json lacks (saved before the key existed) takes its default."""
  variant = cfg.get("model", {}).get("variant")
  flat = {**(_defaults(variant) if variant else {}), **key_table.flat(cfg)}
  keep = {k: v for k, v in flat.items() if not ignored(k) and key_table.applies(k, flat)}
  return tuple(sorted((k, json.dumps(v)) for k, v in keep.items()))


# An equal-compute arm's steps are its reference's budget times their FLOP ratio at its L
# (configs/length_sweep.py, configs/subword.py): within such an arm they follow the table's axis.
PER_ARM_AXIS = ("train.num_steps",)


def _axis_keys(rows) -> set:
  """The keys with one value per L over `rows`, at two L or more, every L's rows having them."""
  per_len = collections.defaultdict(lambda: collections.defaultdict(set))
  keys_of = collections.defaultdict(set)
  for r in rows:
    for k, v in r["experiment"]:
      per_len[k][r["seq_len"]].add(v)
    keys_of[r["seq_len"]].update(k for k, _ in r["experiment"])
  return {
    k
    for k, by_len in per_len.items()
    if len(by_len) > 1
    and all(len(vs) == 1 for vs in by_len.values())
    and all(k in keys_of[L] for L in by_len)
  }


def _drop_axis_settings(rows):
  """Leave out of each experiment the settings that follow the table's axis: a key with one
  value per L across all runs (the length sweep's batch = tokens per step / L) cannot tell two
  experiments at the same L apart, so it must not split a variant's row; nor can an
  equal-compute arm's steps where they take one value per L within that arm."""
  axis = _axis_keys(rows)
  arms = collections.defaultdict(list)
  for r in rows:
    if r["compute_of"]:
      arms[r["label"]].append(r)
  per_arm = {lab: _axis_keys(rs) & set(PER_ARM_AXIS) for lab, rs in arms.items()}
  for r in rows:
    drop = axis | per_arm.get(r["label"], set())
    r["experiment"] = tuple((k, v) for k, v in r["experiment"] if k not in drop)
  return rows


def labels(rows):
  """Each row's label: its variant label, plus the settings in which its experiment differs.
  Where one experiment of a variant label has the most runs (a sweep's main arm beside its
  learning-rate check, say), it keeps the plain label and each other one names the settings in
  which it differs from it; on a tie every experiment names the settings in which they differ."""
  rows = _drop_axis_settings(rows)
  by_label = collections.defaultdict(lambda: collections.defaultdict(set))
  for r in rows:
    by_label[r["label"]][r["experiment"]].add(r["run"])
  names = {}
  for lab, groups in by_label.items():
    sizes = sorted((len(runs) for runs in groups.values()), reverse=True)
    main = (
      max(groups, key=lambda g: len(groups[g])) if len(sizes) == 1 or sizes[0] > sizes[1] else None
    )
    for g in groups:
      mine = dict(g)
      if g == main:
        names[(lab, g)] = lab
        continue
      if main is not None:
        ref = dict(main)
        # the keys both have and differ in; where none, a key only this experiment has
        keys = sorted(k for k in mine if k in ref and ref[k] != mine[k])
        keys = keys or sorted(k for k in mine if k not in ref)
        gone = sorted(k for k in ref if k not in mine)  # a key only the main arm has
      else:  # a tie: the keys in which two of the experiments that have them differ (a key
        # only some have means nothing in the others: the key deciding it, data.source, is named)
        keys = sorted(k for k in mine if len({dict(h)[k] for h in groups if k in dict(h)}) > 1)
        gone = []
      # a key this run does not have (it means nothing here: `key_table.applies`) is not named
      extra = ", ".join(f"{k}={json.loads(mine[k])}" for k in keys) or ", ".join(
        f"{k}=-" for k in gone
      )
      names[(lab, g)] = f"{lab} ({extra})" if extra else lab
  for r in rows:
    r["label"] = names[(r["label"], r["experiment"])]
  return rows
