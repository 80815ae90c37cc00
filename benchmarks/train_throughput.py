"""Training throughput per variant: tokens/s, step time, peak memory, MFU (docs/flops.md).

  python benchmarks/train_throughput.py --preset=runlocal            # CPU, runlocal size
  python benchmarks/train_throughput.py --preset=small --batch=32    # GPU: 6/384, V=27
  python benchmarks/train_throughput.py --preset=gpt2 --batch=32     # GPU: 12/768, V=50304
  python benchmarks/train_throughput.py --preset=gpt2 --batch=32 --variants=ar --devices=1,2,4
      # data-parallel scaling: batch 32 per device on the first 1, 2, 4 devices

Synthetic tokens (throughput does not depend on the text). Warm-up steps first; then --steps
steps run back to back in windows of --window, as the training loop runs them: it waits on the
device only to log, every train.log_every (50) steps, so the default window is 50. Step time =
the median window's time per step; each window pays one pipeline fill (the first step's
dispatch) and drain, spread over its steps (5-step windows until session 5). `step_ms_synced`
is the median of --sync_steps further steps each waited on alone (host dispatch not overlapped,
the method before 2026-11-22). MFU against the H100 datasheet (989 TFLOP/s) and the measured bf16
matmul peak (798 TFLOP/s).
"""

import argparse
import json
import statistics
import time

import jax
import numpy as np

from aoarm.config import config_lib
from aoarm.infra import compile_cache, sharding
from aoarm.models import VARIANTS, ModelConfig
from aoarm.run import flops
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig

PRESETS = {  # layers, d_model, heads, seq_len, vocab, dtype
  "runlocal": (2, 64, 4, 64, 27, "float32"),
  "small": (6, 384, 6, 1024, 27, "bfloat16"),
  "gpt2": (12, 768, 12, 1024, 50304, "bfloat16"),
  "350m": (24, 1024, 16, 1024, 50304, "bfloat16"),  # the pod presets (config arg size=)
  "1.3b": (24, 2048, 16, 1024, 50304, "bfloat16"),
}


def run_config(variant, preset, seq_len=None, attention="auto", remat="none", model_kw=None):
  """(config, ModelConfig) of one variant at a preset size; `model_kw` overrides config.model."""
  layers, d, heads, L, V, dtype = PRESETS[preset]
  L = seq_len or L
  c = config_lib.base_config(variant, f"seq_len={L}")
  c.model.update(
    num_layers=layers,
    d_model=d,
    num_heads=heads,
    dtype=dtype,
    remat=remat,
  )
  c.model.kernels.attention = attention
  for key, value in (model_kw or {}).items():  # 'kernels.norm' or an old flat name 'norm_impl'
    *path, name = key.split(".")
    node = c.model
    for p in path:
      node = node[p]
    # a number or a flag takes its default's type (query_layers=1), as config args do
    value = config_lib.cast_like(node.get(name), str(value))
    with node.unlocked():
      node[name] = value
  return c, ModelConfig.from_config(dict(c.model, vocab_size=V), seq_len=L)


def setup(
  variant,
  preset,
  batch,
  seq_len=None,
  attention="auto",
  remat="none",
  devices=0,
  model_kw=None,
  ema_decay=0.0,
):
  """(trainer, state, four synthetic batches) for one variant at a preset size, on the first
  `devices` devices (0: all) with a data-parallel mesh; `model_kw` overrides config.model."""
  c, mcfg = run_config(variant, preset, seq_len, attention, remat, model_kw)
  L, V = mcfg.seq_len, mcfg.vocab_size
  c.train.batch_size = batch
  c.train.ema_decay = ema_decay  # > 0: the state also holds the parameters' EMA
  mesh = sharding.make_mesh(c.mesh, jax.devices()[: devices or None])
  # as a run sets it (setup.prepare): the step's random orders draw through the same lowering
  compile_cache.threefry_kernel(c.train.threefry_kernel)
  trainer = Trainer(TrainConfig.from_config(c), mcfg, mesh)
  state = trainer.init_state(jax.random.key(0))
  rng = np.random.default_rng(0)
  xs = [
    sharding.global_batch(rng.integers(0, V, (batch, L), dtype=np.int32), mesh) for _ in range(4)
  ]
  return trainer, state, xs


def state_bytes(trainer) -> int:
  """Bytes of the whole training state (parameters, optimizer moments, the EMA if any)."""
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(trainer.abstract_state))


def model_overrides(text: str) -> dict:
  """'k=v,k2=v2' -> {k: v, k2: v2} (string values) for `--model`."""
  return dict(kv.split("=", 1) for kv in text.split(",") if kv)


def bench(
  variant,
  preset,
  batch,
  steps,
  warmup,
  seq_len=None,
  attention="auto",
  remat="none",
  devices=0,
  window=50,
  sync_steps=10,
  model_kw=None,
  ema_decay=0.0,
  built=None,
):
  """One variant's row; `built`: `setup`'s (trainer, state, batches) to time instead of new ones
  (its state is donated to the steps)."""
  trainer, state, xs = built or setup(
    variant, preset, batch, seq_len, attention, remat, devices, model_kw, ema_decay
  )
  L, n_dev = trainer.mcfg.seq_len, trainer.mesh.devices.size
  for i in range(warmup):
    state, m = trainer.train_step(state, xs[i % 4])
  jax.block_until_ready(m["loss"])
  # Steps run back to back, as in the training loop (it waits on the device only to log): each
  # window of `window` steps is timed from the first dispatch to the last step's result.
  window = min(window, steps)
  windows = []
  for _ in range(max(1, steps // window)):
    t = time.perf_counter()
    for i in range(window):
      state, m = trainer.train_step(state, xs[i % 4])
    jax.block_until_ready(m["loss"])
    windows.append((time.perf_counter() - t) / window)
  dt = statistics.median(windows)
  synced = []  # for comparison: each step waited on alone (host dispatch not overlapped)
  for i in range(sync_steps):
    t = time.perf_counter()
    state, m = trainer.train_step(state, xs[i % 4])
    jax.block_until_ready(m["loss"])
    synced.append(time.perf_counter() - t)
  tps = batch * L / dt
  mem = jax.devices()[0].memory_stats() or {}
  fpt = flops.train_flops_per_token(trainer.mcfg)
  return {
    "variant": variant,
    "preset": preset,
    "seq_len": L,
    "batch": batch,
    "devices": n_dev,
    "step_ms": 1e3 * dt,
    "step_ms_synced": 1e3 * statistics.median(synced) if synced else None,
    "tokens_per_s": tps,
    "peak_mem_gib": mem.get("peak_bytes_in_use", 0) / 2**30,
    "state_gib": state_bytes(trainer) / 2**30,  # params + optimizer state (+ EMA)
    "ema_decay": ema_decay,
    "tokens_per_s_per_device": tps / n_dev,
    "mfu_datasheet": tps * fpt / flops.H100_DATASHEET_BF16 / n_dev,
    "mfu_measured": tps * fpt / flops.H100_MEASURED_BF16 / n_dev,
    "loss": float(m["loss"]),
    "attention": attention,
    "remat": remat,
    "window": window,
    "model_kw": model_kw or {},
  }


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--preset", default="runlocal", choices=sorted(PRESETS))
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--seq_len", type=int, default=0)
  p.add_argument("--steps", type=int, default=150)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--window", type=int, default=50, help="steps per back-to-back timed window")
  p.add_argument("--sync_steps", type=int, default=10, help="extra steps timed one by one")
  p.add_argument("--attention", default="auto")
  p.add_argument("--remat", default="none")
  p.add_argument("--devices", default="", help="comma list: scaling runs, --batch per device")
  p.add_argument("--model", default="", help="config.model overrides, e.g. kernels.norm=xla")
  p.add_argument("--json", default="")
  p.add_argument("--ema_decay", type=float, default=0.0, help="> 0: the state holds an EMA")
  a = p.parse_args()
  model_kw = model_overrides(a.model)
  rows = []
  scaling = [int(n) for n in a.devices.split(",") if n]
  for v in a.variants.split(","):
    for n in scaling or [0]:
      batch = a.batch * n if n else a.batch
      kw = dict(attention=a.attention, remat=a.remat, devices=n, window=a.window)
      kw.update(seq_len=a.seq_len or None, sync_steps=a.sync_steps, model_kw=model_kw)
      kw.update(ema_decay=a.ema_decay)
      rows.append(bench(v, a.preset, batch, a.steps, a.warmup, **kw))
      print(json.dumps(rows[-1]), flush=True)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(rows, f, indent=2)
  print(f"\ndevice: {jax.devices()[0].device_kind} x{len(jax.devices())}")
  print(
    "| variant | L | devices | batch | step ms | tokens/s | per device | scaling | peak GiB "
    "| MFU (989) | MFU (798) |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  one = {}
  for r in rows:
    base = one.setdefault(r["variant"], r["tokens_per_s_per_device"])  # first row per variant
    print(
      f"| {r['variant']} | {r['seq_len']} | {r['devices']} | {r['batch']} | {r['step_ms']:.1f} | "
      f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s_per_device']:,.0f} | "
      f"{r['tokens_per_s_per_device'] / base:.0%} | {r['peak_mem_gib']:.2f} | "
      f"{100 * r['mfu_datasheet']:.1f}% | {100 * r['mfu_measured']:.1f}% |"
    )


if __name__ == "__main__":
  main()
