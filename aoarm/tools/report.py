"""Gather a sweep's eval JSONs into a markdown table and plots.

  python -m aoarm.tools.report SWEEP_DIR  # -> SWEEP_DIR/report.md, bits_vs_len.png, attention.png
  # (and valid_curves.png where runs evaluated during training)
  python -m aoarm.tools.report SWEEP_DIR --only='_seq_len(128|1024)_' --tag=short_long
                                       # those runs only -> report_short_long.md, ...

Rows: one per experiment (the variant and its options, and any other setting in which the runs
differ, e.g. `opt.lr=0.003`; a variant's experiment with the most runs keeps the plain label, so
a sweep's main arms and its learning-rate check share one report), columns: L. Runs are grouped
by their whole resolved config except the seed and the settings that do not change the
experiment (implementation knobs, logging, checkpointing, evaluation and sampling options, the
mesh), so unrelated runs are never averaged.
Values: held-out bits/token (random order; the identity order in a second table): the mean over
seeds ± its Student-t 95% half-width, n on every cell, or for one seed the eval's standard error
across windows, marked (`aoarm.tools.evidence`). Gaps (`--gap_to`) are seed-paired, or within one
seed window-paired from the evals' per-window files. Evals of another scope (split, window cap, K,
other data, bits/byte) get their own rows, and runs that give no row are listed, not dropped.
"""

import collections
import functools
import glob
import json
import math
import os
import re
import sys

from aoarm import models
from aoarm.config import config_lib, key_table
from aoarm.tools import report_plots
from aoarm.tools.report_tables import attention_table, gap_table, known_label, table


def _step_kind(p):
  """(step, what follows it in the name: '' for the default eval, '-test-w16-best', ...)."""
  m = re.match(r"step_(\d+)(.*)\.json$", os.path.basename(p))
  return (int(m.group(1)), m.group(2)) if m else (-1, None)


def newest_eval(paths):
  """The newest default evaluation (step_<N>.json), else the newest of any kind."""

  def step(p):
    n, kind = _step_kind(p)
    return (kind == "", n)

  return max(paths, key=step)


def newest_of_each_kind(paths) -> list[str]:
  """The newest eval of every kind a run holds (default, test split, best checkpoint, capped,
  K orders, ...: the file name's part after the step), so each scope gives its own rows."""
  newest = {}
  for p in paths:
    n, kind = _step_kind(p)
    if kind is not None and (kind not in newest or n > _step_kind(newest[kind])[0]):
      newest[kind] = p
  return [newest[k] for k in sorted(newest)]


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
_MODEL_OPTIONS = {  # flat key -> ModelConfig field holding its default
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
  for key, field in _MODEL_OPTIONS.items():
    default = getattr(models.ModelConfig, field)
    if given.get(key, default) != default:
      v += f" ({key.split('.')[-1]}={given[key]})"
  other = (cfg_train or {}).get("compute_of", "")
  if other:
    v += f" (equal compute: {other}'s FLOPs)"
  return v + suffix


def _ignored(key: str) -> bool:
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
  keep = {k: v for k, v in flat.items() if not _ignored(k) and key_table.applies(k, flat)}
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


def _labels(rows):
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


def scope(ev: dict, cfg: dict) -> str:
  """What an eval measured beyond its run, where that is not the default (the run's own whole
  valid split, one random order per window, bits per token): '' or e.g. 'test, first 64 of 358
  windows, K=8, bits/byte'. Rows of different scopes never share a cell."""
  parts = []
  split = ev.get("split", (cfg.get("eval") or {}).get("split", "valid"))
  if split != "valid":
    parts.append(split)
  if ev.get("capped"):
    parts.append(f"first {ev.get('max_windows')} of {ev.get('windows_in_split')} windows")
  if ev.get("num_orders", 1) != 1:
    parts.append(f"K={ev['num_orders']}")
  path = (ev.get("data") or {}).get("path", "")
  if path and path != (cfg.get("data") or {}).get(f"{split}_path", path):
    parts.append(f"data {os.path.basename(path)}")
  if "bits_per_byte" in ev:
    parts.append("bits/byte")
  if ev.get("checkpoint") == "best":
    parts.append("best in-training eval's checkpoint")
  if ev.get("weights") == "params" and ((cfg.get("train") or {}).get("ema_decay") or 0) > 0:
    parts.append("raw parameters, not the EMA")
  return ", ".join(parts)


def read_json(path: str):
  """The JSON in `path`, or None where it is not a regular file (a FIFO would block) or not
  whole JSON (what a run killed mid-write leaves)."""
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def gather(sweep_dir: str, only: str = "", also: tuple[str, ...] = (), skipped=None) -> list[dict]:
  """Every evaluated run under sweep_dir and the folders `also` (each a run's workdir or a folder
  of them) whose folder name matches the regex `only`. `skipped`, a list, gets (run, why) of
  every matching run that gives no row."""
  skipped = [] if skipped is None else skipped
  rows = []
  cfgs = sorted(glob.glob(os.path.join(sweep_dir, "*", "config.json")))
  for extra in also:
    one = os.path.join(extra, "config.json")
    cfgs += (
      [one] if os.path.isfile(one) else sorted(glob.glob(os.path.join(extra, "*", "config.json")))
    )
  for cfg_path in cfgs:
    run = os.path.dirname(cfg_path)
    name = os.path.relpath(run, sweep_dir)
    if only and not re.search(only, os.path.basename(run)):
      continue
    evals = glob.glob(os.path.join(run, "eval", "step_*.json"))
    cfg = read_json(cfg_path)
    if cfg is None:
      skipped.append((name, "config.json is not whole JSON"))
      continue
    if not evals:
      skipped.append((name, "no eval"))
      continue
    diag = glob.glob(os.path.join(run, "diagnostics", "step_*.json"))
    d = None
    if diag:
      d = (read_json(newest_eval(diag)) or {}).get("summary")
    for ev_path in newest_of_each_kind(evals):
      ev = read_json(ev_path)
      if ev is None:
        skipped.append((name, f"{os.path.basename(ev_path)} is not whole JSON"))
        continue
      rows += _eval_rows(name, cfg, ev, ev_path, d)
  return _labels(rows)


def _eval_rows(name: str, cfg: dict, ev: dict, ev_path: str, d) -> list[dict]:
  """One row per order of one eval JSON of the run `name`."""
  rows = []
  where = scope(ev, cfg)
  for order, r in ev.get("by_order", {"random": ev}).items():
    key = order
    order = "random" if order == "elbo" else order  # mdm's ELBO sits with random orders
    lab = label(cfg["model"], cfg.get("order"), cfg.get("train"))
    rows.append(
      {
        "run": name,
        "label": f"{lab} [{where}]" if where else lab,
        "scope": where,
        "experiment": experiment(cfg),
        "compute_of": cfg.get("train", {}).get("compute_of", ""),
        "seq_len": cfg["data"]["seq_len"],
        "seed": cfg["seed"],
        "order": order,
        "order_key": key,
        "bits": r.get("bits_per_byte", r["bits_per_token"]),
        "stderr_bits": r["stderr"] / math.log(2) / r.get("bytes_per_token", 1.0),
        "step": ev["step"],
        "tokens_seen": ev["step"] * cfg["train"]["batch_size"] * cfg["data"]["seq_len"],
        "diagnostics": d,
        "per_window": ev_path[: -len(".json")] + ".npz",
      }
    )
  return rows


def _fail(msg: str):
  print(f"aoarm: error: {msg}", file=sys.stderr)
  sys.exit(2)


def _args(argv):
  """The parsed flags, --only and --tag checked (one line, exit 2, before any file is read)."""
  import argparse

  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("sweep_dir", help="a folder of run workdirs (each with config.json and eval/)")
  p.add_argument("--only", default="", help="regex on run folder names: report those runs only")
  p.add_argument(
    "--also",
    default="",
    help="comma list of more runs (workdirs, or folders of them) to report with sweep_dir's",
  )
  p.add_argument("--tag", default="", help="suffix of the output files: report_TAG.md, ...")
  p.add_argument("--gap_to", default="", help="a row's label: every row's gap to it, in bits")
  p.add_argument(
    "--gap_of",
    default="",
    help="with --gap_to, a row's label: the share of its gap each row closes",
  )
  a = p.parse_args(argv)
  if not os.path.isdir(a.sweep_dir):
    _fail(f"{a.sweep_dir} is not a directory")
  a.also = tuple(x for x in a.also.split(",") if x)
  for x in a.also:
    if not os.path.isdir(x):
      _fail(f"--also: {x} is not a directory")
  try:
    re.compile(a.only)
  except re.error as e:
    _fail(f"--only={a.only!r} is not a regular expression: {e}")
  if a.tag and not re.fullmatch(r"[\w.-]+", a.tag):
    _fail(f"--tag={a.tag!r}: use letters, digits, '_', '.', '-'")
  if a.gap_of and not a.gap_to:
    _fail("--gap_of needs --gap_to")
  return a


def main(argv=None):
  a = _args(argv)
  d = a.sweep_dir
  skipped = []
  rows = gather(d, a.only, a.also, skipped)
  if not rows:
    matching = f" in runs matching --only={a.only!r}" if a.only else ""
    _fail(f"no eval JSONs under {d}/*/eval/{matching}")
  labels = {r["label"] for r in rows}
  for flag, lab in (("gap_to", a.gap_to), ("gap_of", a.gap_of)):
    if lab and not known_label(lab, rows):
      _fail(f"--{flag}={lab!r} is no row of this report (rows: {', '.join(sorted(labels))})")
  sfx = f"_{a.tag}" if a.tag else ""
  md = [
    "# Sweep report",
    "",
    f"Runs: {len({r['run'] for r in rows})} in `{d}`"
    + (f" and `{','.join(a.also)}`" if a.also else "")
    + (f" matching `{a.only}`." if a.only else "."),
    "",
    *(
      [f"Not in the tables ({len(skipped)}): " + "; ".join(f"`{r}` ({w})" for r, w in skipped), ""]
      if skipped
      else []
    ),
    "Held-out bits per token (bits/char at character level; a [scope] after a label says what"
    " else its eval measured), random order: mean over seeds ± the 95% Student-t half-width"
    " (n − 1 degrees of freedom), n on every cell; one seed: ± its standard error across"
    " windows:",
    "",
    table(rows, "random"),
    "",
    "Held-out bits per token, left-to-right order:",
    "",
    table(rows, "l2r"),
    "",
  ]
  for order in ("random", "l2r") if a.gap_to else ():
    md += [
      f"Gap to {a.gap_to}, {order} order (bits per token; seed-paired over the seeds both arms"
      " ran; within one seed, window-paired):",
      "",
      gap_table(rows, order, a.gap_to, a.gap_of),
      "",
    ]
  report_plots.plot(rows, os.path.join(d, f"bits_vs_len{sfx}.png"))
  if report_plots.plot_attention(rows, os.path.join(d, f"attention{sfx}.png")):
    md += [
      "Attention diagnostics (random order; mass on the 4 most recent rows in generation order,"
      " structural, and on the 4 nearest positions, semantic): mean over seeds ± 95% t, n; one"
      " seed: ± its standard error over windows. Plot: "
      f"attention{sfx}.png",
      "",
      attention_table(rows),
      "",
    ]
  if report_plots.plot_curves(d, rows, os.path.join(d, f"valid_curves{sfx}.png")):
    md += [f"Validation curves (train.eval_every): valid_curves{sfx}.png", ""]
  with open(os.path.join(d, f"report{sfx}.md"), "w") as f:
    f.write("\n".join(md))
  with open(os.path.join(d, f"report{sfx}.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print("\n".join(md))


if __name__ == "__main__":
  main()
