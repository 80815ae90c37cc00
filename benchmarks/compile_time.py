"""What a launch waits before its first step, with JAX's persistent compilation cache cold and warm.

  PYTHONPATH=. python benchmarks/compile_time.py                       # GPT-2 shape, both paths
  PYTHONPATH=. python benchmarks/compile_time.py --paths=xla --runlocal # CPU-sized, quick

Each row is one real `python -m aoarm.main` training launch in a fresh workdir (nothing to
resume), 2 steps: `to_first_step_s` from the process start until the loop reports its first step
done (imports, data, init, the step's compilation), `first_step_s` the first step alone (its
compilation), `total_s` the whole command (the final quick eval compiles too). `cold`: an empty
cache folder; `warm`: the same folder again. `kernels` is the default `auto` (the Mosaic-GPU
kernels on a Hopper GPU); `xla` sets every kernel knob to xla. `phases_s`: where the process says
its time went (WORKDIR/timing.json: start, setup, init, first_step, ...).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2 = [
  "--config.model.num_layers=12",
  "--config.model.d_model=768",
  "--config.model.num_heads=12",
  "--config.train.batch_size=32",
]
XLA = [f"--config.model.kernels.{k}=xla" for k in ("mlp", "qkv", "norm", "decode")]
FIRST = re.compile(r"first step done in ([0-9.]+) s")


def launch(workdir, cache, flags, timeout):
  args = [sys.executable, "-m", "aoarm.main", f"--workdir={workdir}"] + flags
  args += [f"--config.train.compile_cache={cache}", "--config.train.num_steps=2"]
  args += ["--config.train.log_every=1", "--config.ckpt.every_steps=1000"]
  t0 = time.perf_counter()
  proc = subprocess.Popen(
    args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  to_first = first = None
  lines = []
  for line in proc.stdout:
    lines.append(line)
    m = FIRST.search(line)
    if m and to_first is None:
      to_first, first = time.perf_counter() - t0, float(m.group(1))
  proc.wait(timeout=timeout)
  if proc.returncode != 0:
    raise SystemExit(f"launch failed ({proc.returncode}):\n{''.join(lines[-40:])}")
  row = {"to_first_step_s": to_first, "first_step_s": first, "total_s": time.perf_counter() - t0}
  timing = os.path.join(workdir, "timing.json")  # the process's own phases (infra.timing)
  if os.path.exists(timing):
    with open(timing) as f:
      row["phases_s"] = json.load(f)["phases_s"]
  return row


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default="configs/two_stream.py:seq_len=1024")
  ap.add_argument("--paths", default="kernels,xla", help="kernels and/or xla")
  ap.add_argument("--runlocal", action="store_true", help="CPU size (configs' runlocal)")
  ap.add_argument("--timeout", type=float, default=600)
  ap.add_argument("--out", default="", help="JSON lines file for the rows")
  a = ap.parse_args()
  config = a.config + (",runlocal" if a.runlocal else "")
  rows = []
  for path in a.paths.split(","):
    flags = [f"--config={config}"] + ([] if a.runlocal else GPT2) + (XLA if path == "xla" else [])
    with tempfile.TemporaryDirectory() as tmp:
      cache = os.path.join(tmp, "cache")
      for state in ("cold", "warm"):
        r = launch(os.path.join(tmp, f"run_{state}"), cache, flags, a.timeout)
        rows.append({"path": path, "cache": state, "config": config, **r})
        print(json.dumps(rows[-1]), flush=True)
        if a.out:
          with open(a.out, "a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
  head = ("path", "cache", "to first step s", "first step s", "total s")
  print("\n{:8s} {:5s} {:>16s} {:>13s} {:>8s}".format(*head))
  for r in rows:
    print(
      f"{r['path']:8s} {r['cache']:5s} {r['to_first_step_s']:16.1f} {r['first_step_s']:13.1f}"
      f" {r['total_s']:8.1f}"
    )


if __name__ == "__main__":
  main()
