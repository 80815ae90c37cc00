"""Gather a sweep's eval JSONs into a markdown table and plots.

  python -m aoarm.report SWEEP_DIR     # -> SWEEP_DIR/report.md, bits_vs_len.png, attention.png
  python -m aoarm.report SWEEP_DIR --only='_seq_len(128|1024)_' --tag=short_long
                                       # those runs only -> report_short_long.md, ...

Rows: one per experiment (the variant and its options, and any other setting in which the runs
differ, e.g. `opt.lr=0.003`), columns: L. Runs are grouped by their whole resolved config except
the seed and the settings that do not change the experiment (implementation knobs, logging,
checkpointing, evaluation and sampling options, the mesh), so unrelated runs are never averaged.
Values: held-out bits/token (random order; the identity order in a second table), the mean over
seeds with error bars across seeds (or the eval's own standard error across windows for one seed).
"""

import collections
import glob
import json
import math
import os
import re
import sys

import numpy as np

from aoarm import models, run_config


def newest_eval(paths):
  """The newest default evaluation (step_<N>.json), else the newest of any kind."""

  def step(p):
    m = re.match(r"step_(\d+)(.*)\.json$", os.path.basename(p))
    return (m.group(2) == "", int(m.group(1))) if m else (False, -1)

  return max(paths, key=step)


def label(cfg_model: dict, cfg_order: dict | None = None) -> str:
  """The variant, with any model option that is not its default (the single-stream probes',
  the second stream's depth, aogpt's), and its training order where that is not the variant's
  own (random orders; left to right for `ar`)."""
  v = cfg_model["variant"]
  own = "random" if models.traits(v).random_orders else "l2r"
  order = (cfg_order or {}).get("train", own)
  if order == "mixture":
    order = f"mixture, l2r_prob={cfg_order.get('l2r_prob')}"
  suffix = f" (train order: {order})" if order != own else ""
  rope = cfg_model.get("rope", {})
  if rope.get("target_heads", 1.0) != 1.0:
    v += f" (target_heads={rope['target_heads']})"
  if rope.get("order_dims", 0.0) != 0.0:
    v += f" (order_dims={rope['order_dims']})"
  if cfg_model.get("query_layers", 0):
    v += f" (query_layers={cfg_model['query_layers']})"
  if cfg_model.get("own_positions", "rope") != "rope":
    v += f" (own_positions={cfg_model['own_positions']})"
  for key, default in (("ada_gate_init", 0.0), ("ada_cond_std", 0.02)):
    if cfg_model.get(key, default) != default:
      v += f" ({key}={cfg_model[key]})"
  return v + suffix


# settings that do not change what a run measures (and the table's own axes)
NOT_EXPERIMENT = (
  "seed",
  "data.seq_len",
  "data.cache_dir",
  "data.num_workers",
  "data.shard_tokens",
  "model.variant",
  "model.rope.target_heads",
  "model.rope.order_dims",
  "model.query_layers",
  "model.own_positions",
  "model.ada_",
  "order.train",
  "order.l2r_prob",
  "model.kernels.",
  "model.remat",
  "model.capture_attention",
  "model.attention_impl",
  "model.embed_impl",
  "model.decode_impl",
  "model.norm_impl",
  "model.mlp_impl",
  "model.qkv_impl",
  "train.log_every",
  "train.eval_every",
  "train.eval_batches",
  "train.final_eval",
  "train.profile",
  "train.compile_cache",
  "train.stop_after",
  "ckpt.",
  "eval.batch_size",
  "sample.",
  "mesh.",
)


def _ignored(key: str) -> bool:
  return any(key.startswith(n) if n.endswith(".") else key == n for n in NOT_EXPERIMENT)


def experiment(cfg: dict) -> tuple:
  """The settings that make a run the experiment it is, seed and table axes left out."""
  flat = run_config.flat(cfg)
  keep = {k: v for k, v in flat.items() if not _ignored(k)}
  return tuple(sorted((k, json.dumps(v)) for k, v in keep.items()))


def _drop_axis_settings(rows):
  """Leave out of each experiment the settings that follow the table's axis: a key with one
  value per L across all runs (the length sweep's batch = tokens per step / L) cannot tell two
  experiments at the same L apart, so it must not split a variant's row."""
  per_len = collections.defaultdict(lambda: collections.defaultdict(set))
  for r in rows:
    for k, v in r["experiment"]:
      per_len[k][r["seq_len"]].add(v)
  keys_of = collections.defaultdict(set)
  for r in rows:
    keys_of[r["seq_len"]].update(k for k, _ in r["experiment"])
  axis = {
    k
    for k, by_len in per_len.items()
    if len(by_len) > 1
    and all(len(vs) == 1 for vs in by_len.values())
    and all(k in keys_of[L] for L in by_len)
  }
  for r in rows:
    r["experiment"] = tuple((k, v) for k, v in r["experiment"] if k not in axis)
  return rows


def _labels(rows):
  """Each row's label: its variant label, plus the settings in which its experiment differs
  from the other experiments of the same variant label."""
  rows = _drop_axis_settings(rows)
  by_label = collections.defaultdict(set)
  for r in rows:
    by_label[r["label"]].add(r["experiment"])
  for r in rows:
    groups = by_label[r["label"]]
    if len(groups) > 1:
      keys = sorted({k for g in groups for k, _ in g if len({dict(h).get(k) for h in groups}) > 1})
      mine = dict(r["experiment"])
      extra = ", ".join(f"{k}={json.loads(mine[k]) if k in mine else '-'}" for k in keys)
      r["label"] = f"{r['label']} ({extra})"
  return rows


def gather(sweep_dir: str, only: str = "", also: tuple[str, ...] = ()) -> list[dict]:
  """Every evaluated run under sweep_dir and the folders `also` (each a run's workdir or a folder
  of them) whose folder name matches the regex `only`."""
  rows = []
  cfgs = sorted(glob.glob(os.path.join(sweep_dir, "*", "config.json")))
  for extra in also:
    one = os.path.join(extra, "config.json")
    cfgs += (
      [one] if os.path.isfile(one) else sorted(glob.glob(os.path.join(extra, "*", "config.json")))
    )
  for cfg_path in cfgs:
    run = os.path.dirname(cfg_path)
    if only and not re.search(only, os.path.basename(run)):
      continue
    evals = glob.glob(os.path.join(run, "eval", "step_*.json"))
    if not evals:
      continue
    with open(cfg_path) as f:
      cfg = json.load(f)
    with open(newest_eval(evals)) as f:
      ev = json.load(f)
    diag = glob.glob(os.path.join(run, "diagnostics", "step_*.json"))
    d = None
    if diag:
      with open(newest_eval(diag)) as f:
        d = json.load(f)["summary"]
    for order, r in ev.get("by_order", {"random": ev}).items():
      order = "random" if order == "elbo" else order  # mdm's ELBO sits with random orders
      rows.append(
        {
          "run": os.path.relpath(run, sweep_dir),
          "label": label(cfg["model"], cfg.get("order")),
          "experiment": experiment(cfg),
          "seq_len": cfg["data"]["seq_len"],
          "seed": cfg["seed"],
          "order": order,
          "bits": r["bits_per_token"],
          "stderr_bits": r["stderr"] / math.log(2),
          "step": ev["step"],
          "tokens_seen": ev["step"] * cfg["train"]["batch_size"] * cfg["data"]["seq_len"],
          "diagnostics": d,
        }
      )
  return _labels(rows)


def table(rows, order: str) -> str:
  rs = [r for r in rows if r["order"] == order]
  Ls = sorted({r["seq_len"] for r in rs})
  labels = sorted({r["label"] for r in rs})
  out = ["| variant | " + " | ".join(f"L={L}" for L in Ls) + " |", "|---|" + "---|" * len(Ls)]
  for lab in labels:
    cells = []
    for L in Ls:
      cell = [r for r in rs if r["label"] == lab and r["seq_len"] == L]
      m, e, n = _agg(cell)
      seeds = len({r["seed"] for r in cell})
      note = f" ({seeds} seeds)" if seeds > 1 else ""
      if n > seeds:  # the same seed run more than once
        note = f" ({n} runs, {seeds} seed{'s' if seeds > 1 else ''})"
      cells.append("" if n == 0 else f"{m:.4f} ± {e:.4f}{note}")
    out.append(f"| {lab} | " + " | ".join(cells) + " |")
  return "\n".join(out)


def gap_table(rows, order: str, ref: str, base: str = "") -> str:
  """Each row's gap to the row labelled `ref` (bits - ref's bits, ± the two errors combined), and
  with `base`, the share of base's gap that the row closes (100%: level with ref; a row whose gap
  is wider than base's 'widens Nx')."""
  rs = [r for r in rows if r["order"] == order]
  Ls = sorted({r["seq_len"] for r in rs})

  def runs(lab, L):
    return [r for r in rs if r["label"] == lab and r["seq_len"] == L]

  def cell(lab, L):
    return _agg(runs(lab, L))

  head = "| variant | " + " | ".join(f"L={L}: gap to {ref}" for L in Ls) + " |"
  out = [head, "|---|" + "---|" * len(Ls)]
  for lab in sorted({r["label"] for r in rs} - {ref}):
    cells = []
    for L in Ls:
      (m, e, n), (mr, er, nr) = cell(lab, L), cell(ref, L)
      if not (n and nr):
        cells.append("")
        continue
      paired = _paired(runs(lab, L), runs(ref, L))
      if paired:  # the same seeds on both sides: the spread of the per-seed gaps
        d = np.array(paired)
        text = f"{d.mean():+.3f} ± {d.std(ddof=1) / math.sqrt(len(d)):.3f} (paired, {len(d)} seeds)"
      else:
        text = f"{m - mr:+.3f} ± {math.hypot(e, er):.3f}"
      mb, _, nb = cell(base, L) if base else (0.0, 0.0, 0)
      if nb and lab != base and mb > mr:
        closed = 1 - (m - mr) / (mb - mr)
        text += (
          f" (closes {closed:.0%})" if closed >= 0 else f" (widens {(m - mr) / (mb - mr):.1f}x)"
        )
      cells.append(text)
    out.append(f"| {lab} | " + " | ".join(cells) + " |")
  return "\n".join(out)


def _paired(rs, refs) -> list[float]:
  """The per-seed gaps (bits - the reference's bits) where both cells hold one run for each of
  the same >= 2 seeds; else []."""
  a, b = ({r["seed"]: r["bits"] for r in x} for x in (rs, refs))
  if len(a) != len(rs) or len(b) != len(refs) or a.keys() != b.keys() or len(a) < 2:
    return []
  return [a[s] - b[s] for s in sorted(a)]


def _agg(rs):
  if not rs:
    return float("nan"), float("nan"), 0
  b = np.array([r["bits"] for r in rs])
  if len(b) > 1:
    return float(b.mean()), float(b.std(ddof=1) / math.sqrt(len(b))), len(b)
  return float(b[0]), rs[0]["stderr_bits"], 1


def plot(rows, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  rs = [r for r in rows if r["order"] == "random"]
  for lab in sorted({r["label"] for r in rs}):
    Ls = sorted({r["seq_len"] for r in rs if r["label"] == lab})
    stats = [_agg([r for r in rs if r["label"] == lab and r["seq_len"] == L]) for L in Ls]
    ax.errorbar(
      Ls, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=lab
    )
  ax.set_xscale("log", base=2)
  ax.set_xlabel("sequence length L")
  ax.set_ylabel("held-out bits/char (random order)")
  ax.set_title("held-out bits per token against sequence length (± 1 SE)", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_attention(rows, path, m: int = 4):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rs = [r for r in rows if r["order"] == "random" and r["diagnostics"]]
  if not rs:
    return False
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  series = collections.defaultdict(list)
  for r in rs:
    for stream, s in r["diagnostics"].items():
      series[(r["label"], stream)].append(
        (r["seq_len"], s[f"structural_{m}"], s[f"semantic_{m}"], s[f"uniform_{m}"])
      )
  for (lab, stream), pts in sorted(series.items()):
    pts.sort()
    Ls = [p[0] for p in pts]
    for ax, i, name in ((axes[0], 1, "structural"), (axes[1], 2, "semantic")):
      ax.plot(Ls, [p[i] for p in pts], marker="o", label=f"{lab} [{stream}]")
      ax.set_title(f"{name}: attention mass on {m} {'most recent' if i == 1 else 'nearest'} rows")
  for ax in axes:  # the uniform baseline: the mass a uniform attention puts on any m rows
    ax.plot(Ls, [p[3] for p in pts], "k:", label="uniform attention")
  for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length L")
  axes[0].set_ylabel(f"mass (m={m})")
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return True


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
  rows = gather(d, a.only, a.also)
  if not rows:
    matching = f" in runs matching --only={a.only!r}" if a.only else ""
    _fail(f"no eval JSONs under {d}/*/eval/{matching}")
  labels = {r["label"] for r in rows}
  for flag, lab in (("gap_to", a.gap_to), ("gap_of", a.gap_of)):
    if lab and lab not in labels:
      _fail(f"--{flag}={lab!r} is no row of this report (rows: {', '.join(sorted(labels))})")
  sfx = f"_{a.tag}" if a.tag else ""
  md = [
    "# Sweep report",
    "",
    f"Runs: {len({r['run'] for r in rows})} in `{d}`"
    + (f" and `{','.join(a.also)}`" if a.also else "")
    + (f" matching `{a.only}`." if a.only else "."),
    "",
    "Held-out bits/char, random order (mean ± standard error):",
    "",
    table(rows, "random"),
    "",
    "Held-out bits/char, left-to-right order:",
    "",
    table(rows, "l2r"),
    "",
  ]
  for order in ("random", "l2r") if a.gap_to else ():
    md += [
      f"Gap to {a.gap_to}, {order} order (bits/char):",
      "",
      gap_table(rows, order, a.gap_to, a.gap_of),
      "",
    ]
  plot(rows, os.path.join(d, f"bits_vs_len{sfx}.png"))
  if plot_attention(rows, os.path.join(d, f"attention{sfx}.png")):
    md += [f"Attention diagnostics: attention{sfx}.png", ""]
  with open(os.path.join(d, f"report{sfx}.md"), "w") as f:
    f.write("\n".join(md))
  with open(os.path.join(d, f"report{sfx}.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print("\n".join(md))


if __name__ == "__main__":
  main()
