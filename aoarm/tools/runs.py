"""Every run under a folder, at a glance.

  python -m aoarm.tools.runs DIR [--plot=curves.png]

One row per run (a folder holding `config.json`): its variant and L, the step its metrics reached,
its newest held-out result (a `--mode=eval` JSON, else the last in-training eval, marked `~`), and
its values of the config keys that differ between the runs listed (the seed included). `--plot`
draws every run's training loss against step from its `metrics.jsonl`.
"""

import argparse
import glob
import json
import os
import sys

from aoarm.config.key_table import flat

SKIP = {"ckpt", "ckpt_aside", "cache", "tb", "eval", "samples", "diagnostics"}


def find(root: str) -> list[str]:
  out = []
  for d, subdirs, files in os.walk(root):
    subdirs[:] = sorted(s for s in subdirs if s not in SKIP)
    if "config.json" in files:
      out.append(d)
  return out


def _metrics(run: str) -> list[dict]:
  """The run's metrics rows; a line that is not whole JSON (the cut last line a kill -9 leaves)
  is left out. Only a regular file is read: a FIFO would block."""
  path = os.path.join(run, "metrics.jsonl")
  if not os.path.isfile(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except ValueError:
        continue
  return out


def heldout(run: str) -> dict | None:
  """The run's newest held-out result: its `--mode=eval` JSON (`report.newest_eval`'s choice),
  else the last in-training eval in metrics.jsonl (`in_training`: over train.eval_batches
  batches, so `capped`); None if it has neither."""
  from aoarm.tools.report import newest_eval, read_json

  paths = glob.glob(os.path.join(run, "eval", "step_*.json"))
  e = read_json(newest_eval(paths)) if paths else None
  if e is not None:
    return {
      "bits": e["bits_per_token"],
      "capped": bool(e.get("capped")),
      "order": e.get("order", ""),
      "split": e.get("split", ""),
      "in_training": False,
    }
  evals = [m["eval/valid_bits"] for m in _metrics(run) if "eval/valid_bits" in m]
  return {"bits": evals[-1], "capped": True, "in_training": True} if evals else None


def _describe(h: dict | None) -> str:
  if h is None:
    return "-"
  if h["in_training"]:
    return f"~{h['bits']:.4f}"
  capped = " (capped)" if h["capped"] else ""
  return f"{h['bits']:.4f} {h['order']} {h['split']}{capped}".strip()


def table(root: str) -> str:
  runs = find(root)
  if not runs:
    raise SystemExit(f"aoarm: error: no run (a folder with config.json) under {root}")
  from aoarm.tools.report import read_json

  cfgs = {}
  for r in runs:
    cfg = read_json(os.path.join(r, "config.json"))
    cfgs[r] = flat(cfg) if isinstance(cfg, dict) else {"model.variant": "(config.json unreadable)"}
  keys = sorted({k for c in cfgs.values() for k in c})
  differ = [k for k in keys if len({json.dumps(c.get(k)) for c in cfgs.values()}) > 1]
  differ = [k for k in differ if k not in ("model.variant", "data.seq_len")]
  head = ["run", "variant", "L", "step", "held-out bits", *differ]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in runs:
    m, c = _metrics(r), cfgs[r]
    steps = [x["step"] for x in m if "train/loss" in x]
    row = [
      os.path.relpath(r, root),
      str(c.get("model.variant")),
      str(c.get("data.seq_len")),
      str(steps[-1]) if steps else "0",
      _describe(heldout(r)),
      *(str(c.get(k, "")) for k in differ),
    ]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def plot(root: str, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in find(root):
    m = [x for x in _metrics(r) if "train/loss" in x]
    if m:
      ax.plot([x["step"] for x in m], [x["train/loss"] for x in m], label=os.path.relpath(r, root))
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (nats per token)")
  ax.set_title(f"training curves under {root}", fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("dir")
  p.add_argument("--plot", default="", help="write the training curves to this PNG")
  a = p.parse_args(argv)
  if not os.path.isdir(a.dir):
    print(f"aoarm: error: {a.dir} is not a directory", file=sys.stderr)
    sys.exit(2)
  if a.plot and not os.path.isdir(os.path.dirname(os.path.abspath(a.plot))):
    print(f"aoarm: error: --plot={a.plot}: its folder does not exist", file=sys.stderr)
    sys.exit(2)
  try:
    print(table(a.dir))
  except SystemExit as e:
    print(e, file=sys.stderr)
    sys.exit(2)
  if a.plot:
    plot(a.dir, a.plot)
    print(f"wrote {a.plot}")


if __name__ == "__main__":
  main()
