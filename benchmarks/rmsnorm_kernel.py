"""RMSNorm of B*L x D bf16 activations: XLA's fusions vs the Pallas kernels
(`aoarm/kernels/rmsnorm.py`) at several block shapes, on a GPU. Forward alone, and forward +
backward as a block uses it (the residual sum formed in the forward, kept, and its other
gradient added in the backward).

  python benchmarks/rmsnorm_kernel.py                 # 32768 x 768 (GPT-2 shape, B=32)

Prints ms per call (mean of --reps calls after one warm-up) and the largest difference from XLA.
"""

import argparse

import jax
import jax.numpy as jnp
from logsumexp_kernel import timed

from aoarm.kernels import rmsnorm
from aoarm.models import layers

CONFIGS = [None, (64, 8, 4), (64, 16, 8), (32, 8, 4), (16, 16, 8), (8, 8, 4)]


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--rows", type=int, default=32768)
  p.add_argument("--dim", type=int, default=768)
  p.add_argument("--reps", type=int, default=200)
  a = p.parse_args()
  if jax.default_backend() != "gpu":
    backend = jax.default_backend()
    p.exit(2, f"rmsnorm_kernel.py: error: it times a GPU kernel; this backend is {backend}\n")
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(k1, (a.rows, a.dim), jnp.bfloat16)
  dy, dres = jax.random.normal(k2, (2, a.rows, a.dim), jnp.bfloat16)
  scale = 1 + 0.1 * jax.random.normal(k3, (a.dim,))

  def _norm(x, s, impl, keep=False, a=None, blocks=None):
    if impl == "pallas":
      return rmsnorm.norm(x, s, 1e-6, jnp.bfloat16, keep, a, blocks)
    x = x if a is None else x + a
    y = layers.rms_norm(x, s, 1e-6, jnp.bfloat16)
    return (x, y) if keep else y

  def fwd(impl, blocks):
    return jax.jit(lambda x, s: _norm(x, s, impl, blocks=blocks))

  def fwd_bwd(impl, blocks):  # as a block uses it: norm(x + a), x + a kept for the residual
    def norm(x, a, s):
      return _norm(x, s, impl, True, a, blocks)

    def f(x, s):
      y, vjp = jax.vjp(norm, x, dy, s)
      return y, vjp((dres, dy))

    return jax.jit(f)

  for name, make in (("forward", fwd), ("forward+backward", fwd_bwd)):
    sec, ref = timed(make("xla", None), x, scale, reps=a.reps)
    print(f"{name} xla: {1e3 * sec:.3f} ms")
    for blocks in CONFIGS:
      sec, y = timed(make("pallas", blocks), x, scale, reps=a.reps)
      err = max(
        float(jnp.max(jnp.abs(u.astype(jnp.float32) - v.astype(jnp.float32))))
        for u, v in zip(jax.tree.leaves(y), jax.tree.leaves(ref))
      )
      print(f"{name} pallas blocks={blocks}: {1e3 * sec:.3f} ms (max diff {err:.1e})")


if __name__ == "__main__":
  main()
