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

import glob
import json
import math
import os
import re
import sys

from aoarm.tools import report_plots
from aoarm.tools.report_labels import experiment, label, labels
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
  return labels(rows)


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
