"""The MLP kernels' numerics at the GPT-2 shape (H100): run-to-run determinism of both kernels,
and the first training losses with `model.kernels.mlp=xla` against the kernels from the same init.

  python benchmarks/mlp_kernel_numerics.py [--steps=30]
"""

import argparse

import gelu_matmul_kernel
import jax
import jax.numpy as jnp
import numpy as np
import train_throughput

from aoarm.kernels import gelu_mlp as gm


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=30)
  p.add_argument("--repeats", type=int, default=20)
  a = p.parse_args()
  x, w, _, g, _ = gelu_matmul_kernel.operands(*gelu_matmul_kernel.SHAPE)
  fwd = jax.jit(lambda x, w: gm.matmul_gelu(x, w, gm.FWD))
  bwd = jax.jit(lambda g, w, p: gm.matmul_dgelu(g, w, p, gm.BWD))
  first = (*fwd(x, w), bwd(g, w, fwd(x, w)[0]))
  worst = [0.0] * 3
  for _ in range(a.repeats):
    pre, act = fwd(x, w)
    for i, (u, v) in enumerate(zip((pre, act, bwd(g, w, first[0])), first)):
      worst[i] = max(worst[i], float(jnp.abs(u.astype(jnp.float32) - v.astype(jnp.float32)).max()))
  print(f"run-to-run max diff pre/act/d over {a.repeats} repeats:", worst, flush=True)
  out = {}
  for impl in ("xla", "pallas"):
    trainer, state, xs = train_throughput.setup("ar", "gpt2", 32, model_kw={"kernels.mlp": impl})
    losses = []
    for i in range(a.steps):
      state, m = trainer.train_step(state, xs[i % 4])
      losses.append(float(m["loss"]))
    out[impl] = np.array(losses)
    print(impl, np.round(out[impl], 4).tolist(), flush=True)
  print("diff", np.round(out["pallas"] - out["xla"], 4).tolist())


if __name__ == "__main__":
  main()
