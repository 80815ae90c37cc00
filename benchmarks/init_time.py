"""The initial state drawn on the accelerator or on the host (`train.init_on`): time and values.

  PYTHONPATH=. python benchmarks/init_time.py --preset=small --variants=two_stream
  PYTHONPATH=. python benchmarks/init_time.py --preset=runlocal          # CPU, quick

For each variant, in one process (no persistent compilation cache, so each path compiles cold;
a tiny program on each backend runs first so that neither path pays the backends' start): the
seconds to the initial state placed with its shardings, `init_on=device`, `init_on=host`, and
`init_on=device` with JAX's threefry lowered to one GPU kernel (`jax_threefry_gpu_kernel_lowering`:
XLA then compiles a kernel call per draw instead of the unrolled hash; on a CPU it changes
nothing), each a first call (its compilation included) and a second call; and how far apart the
states are: the host's from the device's (the normal draws' last bits may differ between
backends; keys without a prefix) and the kernel path's from the device's (`kernel_` keys; the
hash is integer arithmetic, so they should be equal). JSON lines.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from train_throughput import PRESETS, model_overrides, run_config

from aoarm.infra import compile_cache, sharding
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig

PATHS = {  # name: (train.init_on, jax_threefry_gpu_kernel_lowering)
  "device": ("device", False),
  "host": ("host", False),
  "kernel": ("device", True),
}


def trainer(variant, preset, init_on, model_kw, ema_decay):
  c, mcfg = run_config(variant, preset, model_kw=model_kw)
  c.train.update(init_on=init_on, ema_decay=ema_decay)
  return Trainer(TrainConfig.from_config(c), mcfg, sharding.make_mesh(c.mesh, jax.devices()))


def timed(t, key):
  t0 = time.perf_counter()
  state = jax.block_until_ready(t.init_state(key))
  return state, time.perf_counter() - t0


def distance(a, b) -> dict:
  """How far apart two states are, one float64 pass per leaf."""
  stats = []  # per leaf: (elements differing, size, max |diff|, max |x|)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = np.abs(x - y)
    stats.append((int(np.count_nonzero(d)), d.size, float(d.max()), float(np.abs(x).max())))
  return dict(
    leaves=len(stats),
    leaves_differing=sum(n > 0 for n, *_ in stats),
    elements_differing=sum(n for n, *_ in stats),
    elements=sum(size for _, size, *_ in stats),
    max_abs_diff=max(m for *_, m, _ in stats),
    largest_value=max(v for *_, v in stats),
  )


def bench(variant, preset, model_kw=None, ema_decay=0.0) -> dict:
  """One row: each path's first and second call, and how far apart their states are."""
  key = jax.random.key(0)
  row = {"variant": variant, "preset": preset, "backend": jax.default_backend()}
  states = {}
  for name, (init_on, kernel) in PATHS.items():
    compile_cache.threefry_kernel(kernel)
    try:
      t = trainer(variant, preset, init_on, model_kw or {}, ema_decay)
      states[name], row[f"{name}_first_s"] = timed(t, key)
      row[f"{name}_second_s"] = timed(t, key)[1]
    finally:
      compile_cache.threefry_kernel(False)
  row.update(distance(states["device"], states["host"]))
  kernel = distance(states["device"], states["kernel"])
  row.update(
    {f"kernel_{k}": kernel[k] for k in ("leaves_differing", "elements_differing", "max_abs_diff")}
  )
  return row


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
  ap.add_argument("--variants", default="two_stream")
  ap.add_argument("--model", default="", help="config.model overrides, k=v,k2=v2")
  ap.add_argument("--ema_decay", type=float, default=0.0)
  a = ap.parse_args()
  for backend in {"cpu", jax.default_backend()}:  # each backend's start, outside the timings
    x = jax.device_put(1.0, jax.local_devices(backend=backend)[0])
    jax.block_until_ready(jax.jit(jnp.sin)(x))
  for variant in a.variants.split(","):
    print(json.dumps(bench(variant, a.preset, model_overrides(a.model), a.ema_decay)), flush=True)


if __name__ == "__main__":
  main()
