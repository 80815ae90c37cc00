"""The MLP's matmuls with the GELU in the epilogue (`aoarm/gelu_matmul.py`, Mosaic GPU) against
cuBLAS plus XLA's separate GELU fusions, at the GPT-2 MLP shape (32768 x 768 @ 768 x 3072).

  python benchmarks/gelu_matmul_kernel.py [--sweep]

Prints us per call: XLA's forward (matmul, then gelu) and backward ((g @ w^T) * gelu'(pre)),
cuBLAS's matmul alone, each kernel tiling (with the largest difference from XLA), and the whole
MLP forward + backward through `gelu_matmul.mlp` against XLA's. Hopper only.
"""

import argparse
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from logsumexp_kernel import timed

from aoarm.kernels import gelu_mlp as gm
from aoarm.models import layers

T = gm.Tiling
SWEEP = [
  T(tile_n=192, stages=5, epi_n=32, slots=1),
  T(tile_n=192, snake=8),
  T(tile_n=192, release=False),
  T(tile_n=192, approx=False),
  T(tile_n=192, math="none"),
  T(),
  T(stages=6, epi_n=32),
  T(stages=6),
  T(stages=6, math="none"),
]


SHAPE = (32768, 768, 3072)  # the GPT-2 MLP at batch 32 x 1024: rows, d_model, mlp_dim


def operands(M, D, F):
  """bf16 x (M x D), w_in, w_out, an output gradient g (M x D) and float32 weights r for a
  scalar loss sum(r * mlp(x))."""
  ks = jax.random.split(jax.random.key(0), 5)
  x = jax.random.normal(ks[0], (M, D), jnp.bfloat16)
  wi = (0.03 * jax.random.normal(ks[1], (D, F))).astype(jnp.bfloat16)
  wo = (0.03 * jax.random.normal(ks[2], (F, D))).astype(jnp.bfloat16)
  g = jax.random.normal(ks[3], (M, D), jnp.bfloat16)
  return x, wi, wo, g, jax.random.normal(ks[4], (M, D), jnp.float32)


def _short(ex: Exception) -> str:
  text = str(ex).splitlines()[0]
  return "shared memory exceeded" if "shared memory" in text else text[:100]


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sweep", action="store_true", help="time more tilings than the defaults")
  p.add_argument("--reps", type=int, default=30)
  a = p.parse_args()
  M, D, F = SHAPE
  x, wi, wo, g, r = operands(M, D, F)
  wt = jnp.asarray(wo.T)
  fl = 2 * M * D * F

  def fwd_ref(x, w):
    pre = jnp.dot(x, w)
    return pre, nn.gelu(pre)

  def bwd_ref(g, wt, pre):
    d = jnp.dot(g, wt).astype(jnp.float32) * layers.gelu_derivative(pre.astype(jnp.float32))
    return d.astype(g.dtype)

  us = lambda f, *args: (lambda t: (1e6 * t[0], t[1]))(timed(jax.jit(f), *args, reps=a.reps))  # noqa: E731
  t_f, (pre_r, act_r) = us(fwd_ref, x, wi)
  t_b, d_r = us(bwd_ref, g, wt, pre_r)
  t_mm, _ = us(jnp.dot, x, wi)
  print(f"xla forward (cuBLAS + gelu fusion): {t_f:.0f} us")
  print(f"xla backward (cuBLAS + gelu' fusion): {t_b:.0f} us")
  print(f"cuBLAS matmul alone: {t_mm:.0f} us = {fl / t_mm / 1e6:.0f} TFLOP/s")
  tilings = [("default", gm.FWD)] if gm.FWD == gm.BWD else [("fwd", gm.FWD), ("bwd", gm.BWD)]
  tilings += [(f"sweep {i}", t) for i, t in enumerate(SWEEP)] if a.sweep else []
  for name, t in tilings:
    fields = {k: v for k, v in dataclasses.asdict(t).items() if v != getattr(T(), k)}
    try:
      tf, (pre, act) = us(functools.partial(gm.matmul_gelu, tiling=t), x, wi)
      e = float(jnp.max(jnp.abs(act.astype(jnp.float32) - act_r.astype(jnp.float32))))
      line = f"{name} {fields}: forward {tf:.0f} us (max diff {e:.2g})"
    except ValueError as ex:  # e.g. more shared memory than an SM has
      line = f"{name} {fields}: forward failed ({_short(ex)})"
    try:
      tb, d = us(functools.partial(gm.matmul_dgelu, tiling=t), g, wt, pre_r)
      e = float(jnp.max(jnp.abs(d.astype(jnp.float32) - d_r.astype(jnp.float32))))
      line += f", backward {tb:.0f} us (max diff {e:.2g})"
    except ValueError as ex:
      line += f", backward failed ({_short(ex)})"
    print(line, flush=True)

  def step(f):
    loss = lambda x, a, b: jnp.sum(f(x, a, b).astype(jnp.float32) * r)  # noqa: E731
    return jax.value_and_grad(loss, (0, 1, 2))

  t0, _ = us(step(lambda x, a, b: layers._dot(layers.gelu(layers._dot(x, a)), b)), x, wi, wo)
  t1, _ = us(step(gm.mlp), x, wi, wo)
  print(f"MLP forward + backward: xla {t0:.0f} us, kernels {t1:.0f} us ({t1 - t0:+.0f} us)")


if __name__ == "__main__":
  main()
