"""Attention's q/k/v projection with RoPE in the matmul's epilogue (`aoarm/qkv_rope.py`, Mosaic
GPU) against XLA's projection, slices and `apply_rope`, at the GPT-2 shape (batch 32 x 1024,
d=768, 12 heads of 64; q rotated by a random order's positions).

  python benchmarks/qkv_rope_kernel.py

Prints us per call: XLA's forward and forward + backward, then for each tiling the kernel's
forward (with the largest difference from XLA's q, k, v) and forward + backward (with the
largest relative difference of d x and d w). The backward is XLA's in both. In the
forward + backward the loss reads q, k, v in one fusion, so XLA's path never writes them there
(in the model cuDNN attention reads them from HBM): that column favours XLA. Hopper only.
"""

import jax
import jax.numpy as jnp
import numpy as np
from logsumexp_kernel import timed

from aoarm.kernels import hopper_matmul
from aoarm.kernels import qkv_rope as qr
from aoarm.rope import apply_rope

B, L, D, H, K = 32, 1024, 768, 12, 64
T = hopper_matmul.Tiling
TILINGS = [
  qr.TILING,
  T(tile_n=192, slots=1),
  T(tile_n=192, snake=8),
  T(),
  T(tile_n=192, math="none"),
]


def main():
  ks = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(ks[0], (B, L, D), jnp.bfloat16)
  w = (0.03 * jax.random.normal(ks[1], (D, 3 * H * K))).astype(jnp.bfloat16)
  pos = jnp.argsort(jax.random.uniform(ks[2], (B, L)), axis=1)
  r = jax.random.normal(ks[3], (3, B, L, H, K), jnp.bfloat16)

  def xla(x, w):
    y = jnp.einsum("bld,dphk->blphk", x, w.reshape(D, 3, H, K))
    q, k, v = [a[:, :, 0] for a in jnp.split(y, 3, axis=2)]
    return apply_rope(q, pos), apply_rope(k, pos), v

  def step(f):
    def loss(x, w):
      return sum(
        jnp.sum(ri.astype(jnp.float32) * o.astype(jnp.float32)) for ri, o in zip(r, f(x, w))
      )

    return jax.value_and_grad(loss, (0, 1))

  us = lambda f, *a: (lambda t: (1e6 * t[0], t[1]))(timed(jax.jit(f), *a, reps=30))  # noqa: E731
  t_f, want = us(xla, x, w)
  t_fb, (_, g_want) = us(step(xla), x, w)
  print(f"xla: forward {t_f:.0f} us, forward + backward {t_fb:.0f} us")
  for t in TILINGS:
    f = lambda x, w, t=t: qr.project(x, w, pos, pos, K, 10_000.0, t)  # noqa: E731
    tf, got = us(f, x, w)
    e = max(
      float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())
      for a, b in zip(got, want)
    )
    tfb, (_, g) = us(step(f), x, w)
    eg = max(
      float(
        jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)).max()
        / jnp.abs(b.astype(jnp.float32)).max()
      )
      for a, b in zip(g, g_want)
    )
    print(
      f"kernel {t}: forward {tf:.0f} us (max diff {e:.2g}),",
      f"forward + backward {tfb:.0f} us (rel diff {eg:.2g})",
    )


if __name__ == "__main__":
  import argparse

  argparse.ArgumentParser(description=__doc__.strip().splitlines()[0]).parse_args()
  main()
