"""The row log-sum-exp of B*L x V bf16 logits: XLA's two passes vs the one-read Pallas kernel
(`aoarm/logsumexp.py`) at several block shapes, on a GPU.

  python benchmarks/logsumexp_kernel.py                 # 32768 x 50304 (GPT-2 shape, B=32)
  python benchmarks/logsumexp_kernel.py --rows=65536

Prints ms per call (mean of --reps calls after one warm-up) and the largest difference from XLA.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from aoarm.logsumexp import logsumexp, logsumexp_and_grad

CONFIGS = [(1, 4096, 4), (1, 8192, 8), (2, 2048, 4), (4, 1024, 4), (4, 2048, 4), (8, 1024, 8)]
GRAD_CONFIGS = [
  (1, 4096, 4),
  (1, 4096, 16),
  (1, 8192, 16),
  (1, 8192, 32),
  (1, 4096, 32),
  (2, 4096, 16),
]


def timed(f, *args, reps: int = 10):
  """(seconds per call, last output): one warm-up call, then the mean of `reps` calls."""
  y = f(*args)
  jax.block_until_ready(y)
  t = time.perf_counter()
  for _ in range(reps):
    y = f(*args)
  jax.block_until_ready(y)
  return (time.perf_counter() - t) / reps, y


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--rows", type=int, default=32768)
  p.add_argument("--vocab", type=int, default=50304)
  p.add_argument("--reps", type=int, default=10)
  a = p.parse_args()
  x = 3 * jax.random.normal(jax.random.key(0), (a.rows, a.vocab), jnp.float32)
  x = x.astype(jnp.bfloat16)
  sec, ref = timed(jax.jit(lambda x: logsumexp(x, "xla")), x, reps=a.reps)
  print(f"xla (max pass + sum pass): {1e3 * sec:.3f} ms")
  for R, C, W in CONFIGS:
    f = jax.jit(lambda x, R=R, C=C, W=W: logsumexp(x, "pallas", R, C, W))
    sec, y = timed(f, x, reps=a.reps)
    err = float(jnp.max(jnp.abs(y - ref)))
    print(f"pallas rows={R} block_v={C} warps={W}: {1e3 * sec:.3f} ms (max diff {err:.1e})")
  # The cross-entropy's value and gradient: the log-sum-exp kernel, then XLA's gradient pass
  # (as token_nll's backward), against one kernel that writes the gradient too.
  t = jax.random.randint(jax.random.key(1), (a.rows,), 0, a.vocab)

  def two_step(x, t):
    lse = logsumexp(x, "pallas")
    hit = t[:, None] == jnp.arange(x.shape[1])
    return lse, (jnp.exp(x.astype(jnp.float32) - lse[:, None]) - hit).astype(x.dtype)

  sec, ref = timed(jax.jit(two_step), x, t, reps=a.reps)
  print(f"value+gradient, kernel then XLA: {1e3 * sec:.3f} ms")
  for R, C, W in GRAD_CONFIGS:
    f = jax.jit(lambda x, t, R=R, C=C, W=W: logsumexp_and_grad(x, t, "pallas", R, C, W))
    sec, y = timed(f, x, t, reps=a.reps)
    err = max(float(jnp.max(jnp.abs(u.astype(jnp.float32) - v))) for u, v in zip(y, ref))
    print(f"value+gradient rows={R} block_v={C} warps={W}: {1e3 * sec:.3f} ms (max diff {err:.1e})")


if __name__ == "__main__":
  main()
