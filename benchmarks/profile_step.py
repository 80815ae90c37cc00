"""Where a training step's time goes: a jax.profiler trace of a few steps, summarised.

  python benchmarks/profile_step.py --preset=small --batch=32 --variants=ar,mdm
  python benchmarks/profile_step.py --preset=gpt2 --batch=16 --variants=ar --top=25

For each variant: warm-up, then --steps traced steps (a Perfetto trace, `create_perfetto_trace`),
then a table of the device events grouped by name — total ms per step, share of the device's busy
time, count per step — plus wall time per step and the device-busy fraction. Pass --keep=DIR to
keep the traces (open them in Perfetto / TensorBoard).
"""

import argparse
import collections
import glob
import gzip
import json
import os
import tempfile
import time

import jax
from train_throughput import model_overrides, setup


def load_trace(log_dir: str) -> dict:
  """The newest Perfetto trace under log_dir (a reused --keep dir or a resumed run's
  WORKDIR/profile holds one per trace)."""
  paths = glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"), recursive=True)
  if not paths:
    raise SystemExit(f"no perfetto_trace.json.gz under {log_dir}")
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    return json.load(f)


def device_events(trace: dict):
  """Complete ('X') events on GPU/TPU processes, with their (process, thread) names."""
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  pnames, tnames = {}, {}
  for e in events:
    if e.get("ph") == "M" and e.get("name") == "process_name":
      pnames[e["pid"]] = e["args"]["name"]
    if e.get("ph") == "M" and e.get("name") == "thread_name":
      tnames[(e["pid"], e["tid"])] = e["args"]["name"]

  def on_device(p):
    return "GPU" in p or "TPU" in p or "/device" in p

  any_device = any(on_device(p) for p in pnames.values())  # else (CPU runs) every process
  for e in events:
    p = pnames.get(e.get("pid"), "")
    if e.get("ph") == "X" and (on_device(p) or not any_device):
      yield p, tnames.get((e["pid"], e["tid"]), ""), e


def summarise(trace: dict, steps: int, top: int) -> dict:
  lines = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
  spans = collections.defaultdict(lambda: (float("inf"), float("-inf")))
  for p, t, e in device_events(trace):
    acc = lines[f"{p} | {t}"][e["name"]]
    acc[0] += e.get("dur", 0.0) / 1e3  # us -> ms
    acc[1] += 1
    lo, hi = spans[f"{p} | {t}"]
    spans[f"{p} | {t}"] = (min(lo, e["ts"]), max(hi, e["ts"] + e.get("dur", 0.0)))
  out = {}
  for line, by_name in lines.items():
    busy = sum(v[0] for v in by_name.values())
    rows = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
    lo, hi = spans[line]
    out[line] = {
      "busy_ms_per_step": busy / steps,
      # first start to last end over the traced steps: span - busy is the line's idle time
      "span_ms_per_step": (hi - lo) / 1e3 / steps,
      "kernels_per_step": sum(v[1] for v in by_name.values()) / steps,
      "top": [
        {"name": n[:110], "ms_per_step": v[0] / steps, "share": v[0] / busy, "n": v[1] / steps}
        for n, v in rows
      ],
    }
  return out


def profile(variant, preset, batch, seq_len, steps, top, keep, model_kw=None):
  trainer, state, xs = setup(variant, preset, batch, seq_len, model_kw=model_kw)
  for i in range(3):
    state, m = trainer.train_step(state, xs[i % 4])
  jax.block_until_ready(m["loss"])
  log_dir = keep and os.path.join(keep, variant) or tempfile.mkdtemp()
  jax.profiler.start_trace(log_dir, create_perfetto_trace=True)
  t = time.perf_counter()
  for i in range(steps):
    state, m = trainer.train_step(state, xs[i % 4])
  jax.block_until_ready(m["loss"])
  wall = (time.perf_counter() - t) / steps
  jax.profiler.stop_trace()
  return {
    "variant": variant,
    "wall_ms_per_step": 1e3 * wall,
    "lines": summarise(load_trace(log_dir), steps, top),
  }


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--preset", default="runlocal")
  p.add_argument("--variants", default="ar,mdm")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--seq_len", type=int, default=0)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--top", type=int, default=15)
  p.add_argument("--keep", default="")
  p.add_argument("--model", default="", help="config.model overrides, e.g. kernels.norm=xla")
  p.add_argument("--json", default="")
  p.add_argument("--trace_dir", default="", help="summarise this trace (e.g. WORKDIR/profile)")
  a = p.parse_args()
  results = []
  if a.trace_dir:  # a trace written by --config.train.profile=A:B (steps = B - A)
    results.append(
      {
        "variant": a.trace_dir,
        "wall_ms_per_step": 0.0,
        "lines": summarise(load_trace(a.trace_dir), a.steps, a.top),
      }
    )
  for v in filter(None, [] if a.trace_dir else a.variants.split(",")):
    kw = model_overrides(a.model)
    results.append(profile(v, a.preset, a.batch, a.seq_len or None, a.steps, a.top, a.keep, kw))
  for r in results:
    v = r["variant"]
    print(f"\n## {v}: {r['wall_ms_per_step']:.2f} ms per step (wall)")
    for line, s in r["lines"].items():
      if s["busy_ms_per_step"] < 0.05 * r["wall_ms_per_step"]:
        continue
      print(
        f"### {line}: busy {s['busy_ms_per_step']:.2f} of {s['span_ms_per_step']:.2f} ms per "
        f"step, {s['kernels_per_step']:.0f} kernels"
      )
      for row in s["top"]:
        print(
          f"  {row['ms_per_step']:8.3f} ms {100 * row['share']:5.1f}% x{row['n']:<6.1f} "
          f"{row['name']}"
        )
  if a.json:
    with open(a.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
