"""The row log-sum-exp of B*L x V bf16 logits: XLA's two passes vs the one-read Pallas kernel
(`aoarm/logsumexp.py`) at several block shapes, on a GPU. Then the cross-entropy's value and
gradient: that kernel followed by XLA's gradient pass, vs one experimental kernel doing both.

  python benchmarks/logsumexp_kernel.py                 # 32768 x 50304 (GPT-2 shape, B=32)
  python benchmarks/logsumexp_kernel.py --rows=65536

Prints ms per call (mean of --reps calls after one warm-up) and the largest difference from XLA.
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from aoarm.kernels.row_logsumexp import logsumexp, online_max_sum

CONFIGS = [(1, 4096, 4), (1, 8192, 8), (2, 2048, 4), (4, 1024, 4), (4, 2048, 4), (8, 1024, 8)]
GRAD_CONFIGS = [
  (1, 4096, 4),
  (1, 4096, 16),
  (1, 8192, 16),
  (1, 8192, 32),
  (1, 4096, 32),
  (2, 4096, 16),
]


# An experiment, not used by the model: the cross-entropy's value and gradient from one kernel.
# Measured on the H100 at 32768 x 50304: 3.41 ms against 3.58 for the log-sum-exp kernel then
# XLA's gradient pass - the second pass does not find the rows in L2, so it saves ~5%.
def _grad_kernel(x_ref, t_ref, o_ref, p_ref, *, V: int, block_v: int):
  """Log-sum-exp, then a second pass over the same rows writing softmax minus the target's
  one-hot (hoped: an L2 hit while the row block is recent)."""
  m_R, s_R = online_max_sum(x_ref, o_ref.shape[0], V, block_v)
  lse_R = m_R + jnp.log(s_R)
  o_ref[...] = lse_R
  t_R = t_ref[...]

  def body(j, carry):
    cols = j * block_v + jnp.arange(block_v)
    blk = (slice(None), pl.ds(j * block_v, block_v))
    x = plgpu.load(x_ref.at[blk], mask=(cols < V)[None, :], other=-jnp.inf)
    p = jnp.exp(x.astype(jnp.float32) - lse_R[:, None])
    p = jnp.where(cols[None, :] == t_R[:, None], p - 1.0, p)
    plgpu.store(p_ref.at[blk], p.astype(p_ref.dtype), mask=(cols < V)[None, :])
    return carry

  jax.lax.fori_loop(0, pl.cdiv(V, block_v), body, 0)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def logsumexp_and_grad(x_NxV, t_N, block_rows: int, block_v: int, warps: int):
  N, V = x_NxV.shape
  row_spec = pl.BlockSpec((block_rows, V), lambda i: (i, 0))
  return pl.pallas_call(
    functools.partial(_grad_kernel, V=V, block_v=block_v),
    grid=(N // block_rows,),
    in_specs=[row_spec, pl.BlockSpec((block_rows,), lambda i: (i,))],
    out_specs=[pl.BlockSpec((block_rows,), lambda i: (i,)), row_spec],
    out_shape=[jax.ShapeDtypeStruct((N,), jnp.float32), jax.ShapeDtypeStruct((N, V), x_NxV.dtype)],
    compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=2),
    interpret=jax.default_backend() != "gpu",
    name="row_logsumexp_grad",
  )(x_NxV, t_N)


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
  sec, ref = timed(
    jax.jit(lambda x: jax.nn.logsumexp(x.astype(jnp.float32), axis=-1)), x, reps=a.reps
  )
  print(f"xla (max pass + sum pass): {1e3 * sec:.3f} ms")
  for R, C, W in CONFIGS:
    f = jax.jit(lambda x, R=R, C=C, W=W: logsumexp(x, R, C, W))
    sec, y = timed(f, x, reps=a.reps)
    err = float(jnp.max(jnp.abs(y - ref)))
    print(f"pallas rows={R} block_v={C} warps={W}: {1e3 * sec:.3f} ms (max diff {err:.1e})")
  # The cross-entropy's value and gradient: the log-sum-exp kernel, then XLA's gradient pass
  # (as token_nll's backward), against one kernel that writes the gradient too.
  t = jax.random.randint(jax.random.key(1), (a.rows,), 0, a.vocab)

  def two_step(x, t):
    lse = logsumexp(x)
    hit = t[:, None] == jnp.arange(x.shape[1])
    return lse, (jnp.exp(x.astype(jnp.float32) - lse[:, None]) - hit).astype(x.dtype)

  sec, ref = timed(jax.jit(two_step), x, t, reps=a.reps)
  print(f"value+gradient, kernel then XLA: {1e3 * sec:.3f} ms")
  for R, C, W in GRAD_CONFIGS:
    f = functools.partial(logsumexp_and_grad, block_rows=R, block_v=C, warps=W)
    sec, y = timed(f, x, t, reps=a.reps)
    err = max(float(jnp.max(jnp.abs(u.astype(jnp.float32) - v))) for u, v in zip(y, ref))
    print(f"value+gradient rows={R} block_v={C} warps={W}: {1e3 * sec:.3f} ms (max diff {err:.1e})")


if __name__ == "__main__":
  main()
