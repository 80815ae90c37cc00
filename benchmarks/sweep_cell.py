"""One sweep cell, as a researcher runs it: one seed alone, then N seeds at once
(`launch/sweep.py`, one process per seed), each from a cold start. Prints a JSON line per
setting: wall seconds, and from the runs' DIR/timing.json the start-up (process start to the
first step done, compilation included), training, final-eval seconds, and the training's share
of the device's peak (metrics.jsonl's train/mfu, after the first logged step).

  python benchmarks/sweep_cell.py --config=configs/evidence.py \\
      --cell='^two_stream_seq_len1024_seed[0-9]+$' --seeds=3 --dir=/tmp/cell \\
      -- --config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt
  python benchmarks/sweep_cell.py --config=configs/length_sweep.py:runlocal \\
      --cell='^two_stream_seq_len128_seed[0-9]+$' --seeds=2 --dir=/tmp/cell_cpu   # CPU size

Each setting gets a fresh folder (DIR/seeds<N>[_<path>], the sweep's output in its sweep.log);
the seeds taken are the cell's first N entries. `--paths=auto,xla` runs every setting on both
paths of the MLP and q/k/v matmuls (the Mosaic-GPU kernels compile while a program is lowered,
in every launch: start-up against step speed, side by side).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "launch"))

STARTUP = ("start", "setup", "init", "loop_setup", "first_step")


def _mfu(run_dir: str) -> float | None:
  rows = []
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      r = json.loads(line)
      if "train/mfu" in r:
        rows.append(r["train/mfu"])
  rows = rows[1:] or rows  # the first window holds the compiling step
  return statistics.mean(rows) if rows else None


def summarise(sweep_dir: str, names: list[str], wall: float) -> dict:
  """The JSON line of one setting: its wall time and the mean over its runs of each phase."""
  per_run = []
  for n in names:
    with open(os.path.join(sweep_dir, n, "timing.json")) as f:
      t = json.load(f)
    p = t["phases_s"]
    per_run.append(
      {
        "startup_s": sum(p.get(k, 0.0) for k in STARTUP),
        "train_s": p.get("train", 0.0),
        "eval_s": p.get("final_eval", 0.0),
        "run_total_s": t["total_s"],
        "mfu": _mfu(os.path.join(sweep_dir, n)),
        "phases_s": p,
      }
    )
  out = {"seeds": len(names), "total_s": round(wall, 1)}
  for k in ("startup_s", "train_s", "eval_s", "run_total_s"):
    out[k] = round(statistics.mean(r[k] for r in per_run), 1)
  mfus = [r["mfu"] for r in per_run if r["mfu"] is not None]
  out["mfu"] = round(statistics.mean(mfus), 4) if mfus else None  # per process, while training
  out["mfu_together"] = round(sum(mfus), 4) if mfus else None  # the device's: seeds share it
  out["runs"] = {n: r["phases_s"] for n, r in zip(names, per_run)}
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True)
  p.add_argument("--cell", required=True, help="regex of the cell's runs (every seed)")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--dir", required=True, help="a scratch folder (emptied)")
  p.add_argument(
    "--paths",
    default="",
    help="comma list of auto|xla: each setting once per path of the MLP and q/k/v matmuls "
    "(model.kernels.mlp/qkv; auto takes the Mosaic-GPU kernels on one Hopper GPU); '' = the "
    "config's own",
  )
  a, extra = p.parse_known_args()
  extra = [e for e in extra if e != "--"]
  import sweep

  entries = [
    e for e in sweep.load_sweep(a.config.partition(":")[0]) if re.search(a.cell, sweep.run_name(e))
  ]
  if len(entries) < a.seeds:
    raise SystemExit(f"--cell={a.cell!r} matches {len(entries)} runs, fewer than --seeds")
  paths = [x for x in a.paths.split(",") if x] or [""]
  for path, n in [(x, n) for x in paths for n in ((1, a.seeds) if a.seeds > 1 else (1,))]:
    if path not in ("", "auto", "xla"):
      raise SystemExit(f"--paths: {path!r} is not auto or xla")
    knobs = [f"--config.model.kernels.{k}={path}" for k in ("mlp", "qkv")] if path else []
    names = [sweep.run_name(e) for e in entries[:n]]
    d = os.path.join(a.dir, f"seeds{n}{'_' + path if path else ''}")
    shutil.rmtree(d, ignore_errors=True)
    only = "^(" + "|".join(re.escape(x) for x in names) + ")$"
    os.makedirs(d)
    t0 = time.perf_counter()
    with open(os.path.join(d, "sweep.log"), "w") as log:  # stdout: the JSON lines only
      res = subprocess.run(
        [sys.executable, "launch/sweep.py", f"--config={a.config}", f"--sweep_dir={d}",
         f"--only={only}", "--", *extra, *knobs],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
      )  # fmt: skip
    wall = time.perf_counter() - t0
    if res.returncode:
      raise SystemExit(f"the sweep of {names} failed (exit {res.returncode}); see {d}/sweep.log")
    print(json.dumps({**({"path": path} if path else {}), **summarise(d, names, wall)}), flush=True)


if __name__ == "__main__":
  main()
