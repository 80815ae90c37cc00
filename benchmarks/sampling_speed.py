"""Sampling speed: cached two-stream (k=1, k=8), cached decoupled RoPE, and mdm (S=L, S=128),
same model size, random weights (speed does not depend on them).

  python benchmarks/sampling_speed.py --batches=32,128 --lengths=256,1024
  python benchmarks/sampling_speed.py --batches=128 --lengths=1024 --only='k=1' --profile=20

Each sampler is jitted, run once to compile, then timed over --reps runs (median); prints
tokens/s (batch * L / time) and the speed-up over mdm with S = L. --decode_impl picks the
cached attention (auto: the Pallas decode kernel on a single GPU), --unroll the decode loop's
unroll factor.
--profile=N traces one more run per sampler (jax.profiler) and prints its top N kernels by
device time, per generated position (divided by L: per decoding step only for k=1).
"""

import argparse
import json
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp

from aoarm.models import ModelConfig, get_model
from aoarm.models.model_config import Kernels
from aoarm.sample import sampling


def time_sampler(variant, L, batch, reps, layers, d, heads, V, decode_impl, profile, **spec_kw):
  mcfg = ModelConfig(
    variant=variant,
    vocab_size=V,
    seq_len=L,
    num_layers=layers,
    d_model=d,
    num_heads=heads,
    dtype="bfloat16",
    kernels=Kernels(attention="auto", decode=decode_impl),
  )
  model = get_model(mcfg)
  x = jnp.zeros((1, L), jnp.int32)
  params = jax.jit(lambda r: model.init(r, x, x + jnp.arange(L)))(jax.random.key(0))["params"]
  spec = sampling.SampleSpec(length=L, **spec_kw)
  fn = sampling.make_sampler(model, mcfg, spec, batch)
  jax.block_until_ready(fn(params, jax.random.key(1)))
  times = []
  for r in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(params, jax.random.key(2 + r)))
    times.append(time.perf_counter() - t)
  summary = None
  if profile:
    from profile_step import load_trace, summarise

    log_dir = tempfile.mkdtemp()
    jax.profiler.start_trace(log_dir, create_perfetto_trace=True)
    jax.block_until_ready(fn(params, jax.random.key(99)))
    jax.profiler.stop_trace()
    summary = summarise(load_trace(log_dir), steps=L, top=profile)
  return statistics.median(times), summary


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batches", default="32", help="comma list of batch sizes")
  p.add_argument("--lengths", default="256,1024")
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--layers", type=int, default=6)
  p.add_argument("--d_model", type=int, default=384)
  p.add_argument("--heads", type=int, default=6)
  p.add_argument("--vocab", type=int, default=27)
  p.add_argument("--only", default="", help="regex: run only the samplers it matches")
  p.add_argument("--decode_impl", default="auto", help="auto | xla | pallas")
  p.add_argument("--unroll", type=int, default=1, help="decode loop unroll factor")
  p.add_argument("--profile", type=int, default=0, help="trace a run; print the top N kernels")
  p.add_argument("--mdm_seconds", type=float, default=0.0, help="baseline if mdm S=L is not run")
  p.add_argument("--json", default="")
  a = p.parse_args()
  size = dict(layers=a.layers, d=a.d_model, heads=a.heads, V=a.vocab)
  rows = []
  grid = [(b, L) for b in map(int, a.batches.split(",")) for L in map(int, a.lengths.split(","))]
  if a.mdm_seconds and len(grid) > 1:
    p.error(f"--mdm_seconds is the baseline of one (batch, L), got {len(grid)}: {grid}")
  for batch, L in grid:
    cases = [
      ("mdm S=L", "mdm", dict(mdm_steps=L)),
      ("mdm S=128", "mdm", dict(mdm_steps=128)),
      ("two_stream k=1", "two_stream", dict(k=1)),
      ("two_stream k=8", "two_stream", dict(k=8)),
      ("decoupled_rope", "decoupled_rope", dict()),
    ]
    base = a.mdm_seconds or None
    for name, variant, kw in cases:
      if a.only and not re.search(a.only, name):
        continue
      dt, prof = time_sampler(
        variant,
        L,
        batch,
        a.reps,
        **size,
        decode_impl=a.decode_impl,
        profile=a.profile,
        unroll=a.unroll,
        **kw,
      )
      base = base or dt
      rows.append(
        {
          "sampler": name,
          "L": L,
          "batch": batch,
          "seconds": dt,
          "tokens_per_s": batch * L / dt,
          "speedup_vs_mdm_S_eq_L": base / dt,
        }
      )
      print(json.dumps(rows[-1]), flush=True)
      for line, sm in (prof or {}).items():
        if sm["busy_ms_per_step"] * L < 0.05 * dt * 1e3:
          continue
        print(f"### {name} | {line}: busy {sm['busy_ms_per_step'] * 1e3:.1f} us per token step")
        for r in sm["top"]:
          us, share = 1e3 * r["ms_per_step"], 100 * r["share"]
          print(f"  {us:8.1f} us {share:5.1f}% x{r['n']:<6.2f} {r['name']}")
        rows[-1]["profile"] = sm
  if a.json:
    with open(a.json, "w") as f:
      json.dump(rows, f, indent=2)
  print(f"\ndevice: {jax.devices()[0].device_kind}; model {a.layers}/{a.d_model}, V={a.vocab}")
  print(f"decode_impl={a.decode_impl} unroll={a.unroll}")
  print("| sampler | L | batch | seconds | tokens/s | speed-up vs mdm S=L |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['sampler']} | {r['L']} | {r['batch']} | {r['seconds']:.3f} | "
      f"{r['tokens_per_s']:,.0f} | {r['speedup_vs_mdm_S_eq_L']:.1f}x |"
    )


if __name__ == "__main__":
  main()
