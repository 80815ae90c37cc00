"""Expand a config's sweep() into runs and start them.

  python launch/sweep.py --config=configs/length_sweep.py --sweep_dir=DIR [--runner=local]
      [--only=REGEX] [--dry_run] [-- --config.a.b=value ...]

Each run gets DIR/<name>, name built from its settings. Runners:
- local: in this machine's environment (train, then eval where training did not write the final
  eval itself); a rerun skips runs whose final eval JSON exists and resumes unfinished ones from
  their checkpoints. Entries that differ only by their seed run at the same time, one process
  each (a small model leaves a GPU mostly idle; each seed keeps its own workdir, checkpoints,
  metrics and resume, and computes exactly what it computes alone), up to --together at once
  (1: one after another); their output goes to DIR/logs/<name>.log. With several at once on a
  GPU each process gets an equal share of its memory (XLA_PYTHON_CLIENT_MEM_FRACTION, unless
  set).
- slurm: writes DIR/sweep.sbatch, an array job (one task per run, `srun` one process per GPU,
  jax.distributed.initialize() in aoarm.main) and prints the sbatch command.
- tpu: prints the `gcloud compute tpus tpu-vm ssh --worker=all` command per run (run
  launch/setup_tpu_vm.sh on the VMs first).
Keys of a sweep entry: names without a dot (`variant`, `seq_len`, `seed`, `compute_of`, ...) go
into the config arg; dotted keys become --config.<key>=<value> overrides.
"""

import argparse
import glob
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # configs import aoarm

from aoarm.run import early_stop  # noqa: E402


def is_arg(key: str) -> bool:
  """A sweep key for the config arg (no dot), not a --config.<key> override."""
  return "." not in key


def _module(config_path: str):
  spec = importlib.util.spec_from_file_location("sweep_config", config_path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def load_sweep(config_path: str) -> list[dict]:
  mod = _module(config_path)
  if not hasattr(mod, "sweep"):
    raise SystemExit(f"{config_path} defines no sweep()")
  return mod.sweep()


def _arg_and_overrides(config: str, entry: dict) -> tuple[str, str, list[str]]:
  """(config file, its arg, the --config.<key> overrides) of one entry's run: `config` may carry
  an arg (`configs/x.py:runlocal`) that joins the entry's own arg keys."""
  path, _, base = config.partition(":")
  arg = ",".join(filter(None, [base] + [f"{k}={v}" for k, v in entry.items() if is_arg(k)]))
  return path, arg, [f"--config.{k}={v}" for k, v in entry.items() if not is_arg(k)]


def planned_values(config: str, entry: dict, extra: list[str], keys) -> list[int]:
  """The integer `keys` of the run this sweep would start now, from one build of its config:
  the config file's for the entry's arg, then the entry's and the command line's overrides (the
  last one given wins)."""
  path, arg, over = _arg_and_overrides(config, entry)
  cfg = _module(path).get_config(arg)
  values = []
  for key in keys:
    node = cfg
    for part in key.split("."):
      node = node[part]
    for o in over + list(extra):
      name, _, value = o.partition("=")
      if name == f"--config.{key}":
        node = int(value)
    values.append(int(node))
  return values


def done(config: str, entry: dict, workdir: str, extra: list[str]) -> bool:
  """Whether the entry's run in `workdir` is `finished` for the steps and patience this sweep
  would give it now."""
  n, patience = planned_values(config, entry, extra, ("train.num_steps", "train.patience"))
  return finished(workdir, n, patience)


def run_name(entry: dict) -> str:
  parts = [str(entry.get("variant", "run"))]
  for k, v in entry.items():
    if k == "variant":
      continue
    parts.append(f"{k.split('.')[-1]}{v}")
  return "_".join(parts).replace("/", "-")


def command(config: str, entry: dict, workdir: str, mode: str, extra: list[str]) -> list[str]:
  """The run's command line (`_arg_and_overrides`), then `extra`."""
  config, arg, over = _arg_and_overrides(config, entry)
  return [
    sys.executable,
    "-m",
    "aoarm.main",
    f"--config={config}:{arg}",
    f"--workdir={workdir}",
    f"--mode={mode}",
    *over,
    *extra,
  ]


def seed_groups(entries: list[dict]) -> list[list[dict]]:
  """The entries, grouped by everything but `seed`, in sweep order: the seeds of one cell."""
  groups: dict = {}
  for e in entries:
    key = json.dumps({k: v for k, v in e.items() if k != "seed"}, sort_keys=True, default=str)
    groups.setdefault(key, []).append(e)
  return list(groups.values())


def run_entry(config, entry, sweep_dir, extra, log_path=None) -> bool:
  """Train (then eval, where training wrote no final eval) one entry; False if a step failed.
  `log_path`: the processes' output goes there (else to this process's stdout)."""
  wd = os.path.join(sweep_dir, run_name(entry))
  out = open(log_path, "a", encoding="utf-8") if log_path else None
  try:
    for mode in ("train", "eval"):
      if mode == "eval" and done(config, entry, wd, extra):
        break  # the training process wrote the final eval itself (train.final_eval)
      cmd = command(config, entry, wd, mode, extra)
      where = f" > {log_path}" if log_path else ""
      print(f"[run] {shlex.join(cmd)}{where}", flush=True)
      res = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT if out else None)
      if res.returncode:
        print(f"[fail] {wd} ({mode}: exit {res.returncode}{where})", flush=True)
        return False
  finally:
    if out:
      out.close()
  return True


def run_together(config, entries, sweep_dir, extra) -> list[bool]:
  """Every entry at once, one process each (threads wait on them), logs in DIR/logs/."""
  if len(entries) == 1:
    return [run_entry(config, entries[0], sweep_dir, extra)]
  logs = os.path.join(sweep_dir, "logs")
  os.makedirs(logs, exist_ok=True)
  ok = [False] * len(entries)
  env_share = "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ
  if env_share:  # each process an equal share of the GPU's memory (children inherit os.environ)
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / len(entries):.3f}"
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

  def one(i, e):
    ok[i] = run_entry(config, e, sweep_dir, extra, os.path.join(logs, f"{run_name(e)}.log"))

  threads = [threading.Thread(target=one, args=(i, e)) for i, e in enumerate(entries)]
  t0 = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  if env_share:
    del os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"]
  names = ", ".join(run_name(e) for e in entries)
  print(f"[together] {len(entries)} runs in {time.perf_counter() - t0:.1f} s: {names}", flush=True)
  return ok


def finished(workdir: str, n: int, patience: int = 0) -> bool:
  """The run has an eval JSON of step `n`, the last step this sweep asks of it (a rerun with a
  larger train.num_steps is not finished: its run resumes and trains on), or it stopped early
  under the same train.patience (`patience`) at its newest checkpoint and has an eval of that
  step or of its best one (a rerun with another patience trains on)."""
  # any eval of that step: evals are named by their settings (step_N-w64.json, ...)
  evals = os.path.join(workdir, "eval")

  def evaluated(step) -> bool:
    return bool(glob.glob(f"{evals}/step_{step}.json") + glob.glob(f"{evals}/step_{step}-*.json"))

  if evaluated(n):
    return True
  ckpt = os.path.join(workdir, "ckpt")
  steps = [int(p) for p in os.listdir(ckpt) if p.isdigit()] if os.path.isdir(ckpt) else []
  stop = early_stop.stopped(workdir, max(steps), patience) if steps else None
  return bool(stop) and (evaluated(stop["step"]) or evaluated(stop["best_step"]))


SBATCH = """#!/bin/bash
#SBATCH --job-name=aoarm-sweep
#SBATCH --array=0-{last}
#SBATCH --gpus-per-node={gpus}
#SBATCH --ntasks-per-node={gpus}
#SBATCH --output={dir}/slurm-%A_%a.out
set -euo pipefail
CMDS=(
{cmds}
)
export AOARM_DISTRIBUTED=1
srun bash -c "${{CMDS[$SLURM_ARRAY_TASK_ID]}}"
"""


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True)
  p.add_argument("--sweep_dir", required=True)
  p.add_argument("--runner", default="local", choices=["local", "slurm", "tpu"])
  p.add_argument("--only", default="", help="regex on run names")
  p.add_argument("--gpus", type=int, default=1, help="slurm: GPUs per run")
  p.add_argument("--tpu", default="", help="tpu: the TPU VM name (with --zone)")
  p.add_argument("--zone", default="")
  p.add_argument("--dry_run", action="store_true")
  p.add_argument(
    "--together",
    type=int,
    default=8,
    help="local: seeds of one cell run at once, at most this many",
  )
  a, extra = p.parse_known_args()
  extra = [e for e in extra if e != "--"]
  path, colon, arg = a.config.partition(":")
  if not os.path.isfile(path):
    print(f"sweep.py: error: --config={a.config}: no such file {path}", file=sys.stderr)
    sys.exit(2)
  a.config, a.sweep_dir = os.path.abspath(path) + colon + arg, os.path.abspath(a.sweep_dir)
  entries = [e for e in load_sweep(os.path.abspath(path)) if re.search(a.only, run_name(e))]
  os.makedirs(a.sweep_dir, exist_ok=True)
  if a.runner == "slurm":
    cmds = []
    for e in entries:
      wd = os.path.join(a.sweep_dir, run_name(e))
      train = shlex.join(command(a.config, e, wd, "train", extra))
      ev = shlex.join(command(a.config, e, wd, "eval", extra))
      cmds.append(shlex.quote(f"{train} && {ev}"))
    path = os.path.join(a.sweep_dir, "sweep.sbatch")
    with open(path, "w") as f:
      f.write(SBATCH.format(last=len(cmds) - 1, gpus=a.gpus, dir=a.sweep_dir, cmds="\n".join(cmds)))
    print(f"sbatch {path}")
    return
  todo = []
  for e in entries:
    wd = os.path.join(a.sweep_dir, run_name(e))
    if a.runner == "tpu":
      inner = shlex.join(command(a.config, e, wd, "train", extra)).replace(
        sys.executable, "python3"
      )
      print(
        f"gcloud compute tpus tpu-vm ssh {a.tpu} --zone={a.zone} --worker=all "
        f"--command={shlex.quote('cd aoarm && AOARM_DISTRIBUTED=1 ' + inner)}"
      )
      continue
    if done(a.config, e, wd, extra):
      print(f"[done] {wd}")
      continue
    if a.dry_run:
      for mode in ("train", "eval"):
        print("[dry] " + shlex.join(command(a.config, e, wd, mode, extra)), flush=True)
      continue
    todo.append(e)
  failed, k = 0, max(a.together, 1)
  for group in seed_groups(todo):
    for i in range(0, len(group), k):
      failed += run_together(a.config, group[i : i + k], a.sweep_dir, extra).count(False)
  if failed:
    print(f"[fail] {failed} of {len(todo)} runs failed", flush=True)
    sys.exit(1)


if __name__ == "__main__":
  main()
