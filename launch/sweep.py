"""Expand a config's sweep() into runs and start them.

  python launch/sweep.py --config=configs/length_sweep.py --sweep_dir=DIR [--runner=local]
      [--only=REGEX] [--dry_run] [-- --config.a.b=value ...]

Each run gets DIR/<name>, name built from its settings. Runners:
- local: one after another in this process's environment (train, then eval); a rerun skips
  runs whose final eval JSON exists and resumes unfinished ones from their checkpoints.
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
import os
import re
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # configs import aoarm


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


def planned_steps(config: str, entry: dict, extra: list[str]) -> int:
  """train.num_steps of the run this sweep would start now: the config file's for the entry's
  arg, then the entry's and the command line's overrides (the last one given wins)."""
  path, _, base = config.partition(":")
  arg = ",".join(filter(None, [base] + [f"{k}={v}" for k, v in entry.items() if is_arg(k)]))
  n = _module(path).get_config(arg).train.num_steps
  over = [f"--config.{k}={v}" for k, v in entry.items() if not is_arg(k)] + list(extra)
  for o in over:
    key, _, value = o.partition("=")
    if key == "--config.train.num_steps":
      n = int(value)
  return n


def run_name(entry: dict) -> str:
  parts = [str(entry.get("variant", "run"))]
  for k, v in entry.items():
    if k == "variant":
      continue
    parts.append(f"{k.split('.')[-1]}{v}")
  return "_".join(parts).replace("/", "-")


def command(config: str, entry: dict, workdir: str, mode: str, extra: list[str]) -> list[str]:
  """`config` may carry an arg (`configs/x.py:runlocal`): it joins every run's own."""
  config, _, base = config.partition(":")
  arg = ",".join(filter(None, [base] + [f"{k}={v}" for k, v in entry.items() if is_arg(k)]))
  over = [f"--config.{k}={v}" for k, v in entry.items() if not is_arg(k)]
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


def finished(workdir: str, n: int) -> bool:
  """The run has an eval JSON of step `n`, the last step this sweep asks of it (a rerun with a
  larger train.num_steps is not finished: its run resumes and trains on)."""
  # any eval of that step: evals are named by their settings (step_N-w64.json, ...)
  evals = os.path.join(workdir, "eval")
  return bool(glob.glob(f"{evals}/step_{n}.json") + glob.glob(f"{evals}/step_{n}-*.json"))


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
    n = planned_steps(a.config, e, extra)
    if finished(wd, n):
      print(f"[done] {wd}")
      continue
    for mode in ("train", "eval"):
      if mode == "eval" and not a.dry_run and finished(wd, n):
        break  # the training process wrote the final eval itself (train.final_eval)
      cmd = command(a.config, e, wd, mode, extra)
      print(("[dry] " if a.dry_run else "[run] ") + shlex.join(cmd), flush=True)
      if not a.dry_run:
        res = subprocess.run(cmd, cwd=REPO)
        if res.returncode:
          print(f"[fail] {wd} ({mode}: exit {res.returncode})", flush=True)
          break


if __name__ == "__main__":
  main()
