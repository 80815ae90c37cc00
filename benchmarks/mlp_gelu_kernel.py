"""MLP matmul with GELU fused into its epilogue, as a Pallas (Triton) kernel, against cuBLAS plus
XLA's separate GELU fusion, at the GPT-2 MLP shape (32768 x 768 @ 768 x 3072). A measured dead
end, kept as the baseline for the next attempt (a Mosaic-GPU wgmma kernel with the epilogue).

  python benchmarks/mlp_gelu_kernel.py

fwd: pre = x @ w_in and act = gelu(pre) from one kernel; bwd: d_pre = (g @ w_out^T) * gelu'(pre).
Prints us per call for XLA and for each block shape, with the largest difference from XLA.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from logsumexp_kernel import timed

from aoarm.models.layers import gelu_derivative

C = float(np.sqrt(2 / np.pi))


def _gelu(p):
  """nn.gelu's formula with plain products (the form the Triton lowering was measured with)."""
  return 0.5 * p * (1 + jnp.tanh(C * (p + 0.044715 * p * p * p)))


def _kernel(x_ref, w_ref, *refs, bk, mode):
  K = x_ref.shape[1]
  bm, bn = x_ref.shape[0], w_ref.shape[1]

  def body(k, acc):
    x = x_ref[:, pl.ds(k * bk, bk)]
    w = w_ref[pl.ds(k * bk, bk), :]
    return acc + jnp.dot(x, w, preferred_element_type=jnp.float32)

  acc = jax.lax.fori_loop(0, K // bk, body, jnp.zeros((bm, bn), jnp.float32))
  if mode == "fwd":
    pre_ref, act_ref = refs
    pre_ref[...] = acc.astype(pre_ref.dtype)
    act_ref[...] = _gelu(acc).astype(act_ref.dtype)
  else:
    pre_ref, d_ref = refs
    d_ref[...] = (acc * gelu_derivative(pre_ref[...].astype(jnp.float32))).astype(d_ref.dtype)


def _matmul_epilogue(mode, a, b, *extra, bm, bn, bk, warps, stages):
  """a @ b with the epilogue of `mode` ('fwd': outputs pre and gelu(pre); 'bwd': one output,
  (a @ b) * gelu'(pre), pre the extra operand), tiled bm x bn, bk-deep steps."""
  M, K = a.shape
  N = b.shape[1]
  tile = pl.BlockSpec((bm, bn), lambda i, j: (i, j))
  out = jax.ShapeDtypeStruct((M, N), a.dtype)
  return pl.pallas_call(
    functools.partial(_kernel, bk=bk, mode=mode),
    grid=(M // bm, N // bn),
    in_specs=[
      pl.BlockSpec((bm, K), lambda i, j: (i, 0)),
      pl.BlockSpec((K, bn), lambda i, j: (0, j)),
    ]
    + [tile] * len(extra),
    out_specs=[tile, tile] if mode == "fwd" else tile,
    out_shape=[out, out] if mode == "fwd" else out,
    compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=stages),
    interpret=jax.default_backend() != "gpu",
  )(a, b, *extra)


TILING = ("bm", "bn", "bk", "warps", "stages")


@functools.partial(jax.jit, static_argnames=TILING)
def mm_gelu(x, w, bm=128, bn=256, bk=64, warps=8, stages=3):
  return _matmul_epilogue("fwd", x, w, bm=bm, bn=bn, bk=bk, warps=warps, stages=stages)


@functools.partial(jax.jit, static_argnames=TILING)
def mm_dgelu(g, wt, pre, bm=128, bn=256, bk=64, warps=8, stages=3):
  return _matmul_epilogue("bwd", g, wt, pre, bm=bm, bn=bn, bk=bk, warps=warps, stages=stages)


def main():
  M, D, F = (32768, 768, 3072) if jax.default_backend() == "gpu" else (256, 128, 256)
  ks = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(ks[0], (M, D), jnp.bfloat16)
  wi = (0.03 * jax.random.normal(ks[1], (D, F))).astype(jnp.bfloat16)
  wo = (0.03 * jax.random.normal(ks[2], (F, D))).astype(jnp.bfloat16)
  g = jax.random.normal(ks[3], (M, D), jnp.bfloat16)
  ref_f = jax.jit(
    lambda x, w: (lambda p: (p, _gelu(p.astype(jnp.float32)).astype(p.dtype)))(jnp.dot(x, w))
  )
  sec, (pre_r, act_r) = timed(ref_f, x, wi, reps=20)
  us = 1e6 * sec
  fl = 2 * M * D * F
  print(f"xla fwd (cublas + gelu fusion): {us:.0f} us", flush=True)
  ref_b = jax.jit(
    lambda g, wt, p: (
      jnp.dot(g, wt).astype(jnp.float32) * gelu_derivative(p.astype(jnp.float32))
    ).astype(g.dtype)
  )
  sec, d_r = timed(ref_b, g, wo.T, pre_r, reps=20)
  us = 1e6 * sec
  print(f"xla bwd (cublas + dgelu fusion): {us:.0f} us", flush=True)
  sec, _ = timed(jax.jit(lambda x, w: jnp.dot(x, w)), x, wi, reps=20)
  us = 1e6 * sec
  print(f"cublas gemm alone: {us:.0f} us = {fl / us / 1e6:.0f} TF/s", flush=True)
  cfgs = [
    (128, 256, 64, 8, 3),
    (128, 128, 64, 4, 4),
    (128, 256, 64, 8, 4),
    (256, 128, 64, 8, 3),
    (128, 128, 64, 8, 4),
    (64, 256, 64, 4, 4),
    (128, 256, 128, 8, 2),
  ]
  if jax.default_backend() != "gpu":
    cfgs = [(64, 64, 32, 4, 2)]
  wt = jnp.asarray(wo.T)
  for bm, bn, bk, W, S in cfgs:
    try:
      tiling = dict(bm=bm, bn=bn, bk=bk, warps=W, stages=S)
      sec, (pre, act) = timed(functools.partial(mm_gelu, **tiling), x, wi, reps=20)
      e1 = float(jnp.max(jnp.abs(act.astype(jnp.float32) - act_r.astype(jnp.float32))))
      sec2, d = timed(functools.partial(mm_dgelu, **tiling), g, wt, pre_r, reps=20)
      e2 = float(jnp.max(jnp.abs(d.astype(jnp.float32) - d_r.astype(jnp.float32))))
      us, us2 = 1e6 * sec, 1e6 * sec2
      print(
        f"pallas {bm}x{bn}x{bk} w{W} s{S}: fwd {us:.0f} us ({fl / us / 1e6:.0f} TF/s) "
        f"err {e1:.2e} | bwd {us2:.0f} us err {e2:.2e}",
        flush=True,
      )
    except Exception as e:
      print(bm, bn, bk, W, S, "failed:", str(e)[:400], flush=True)


if __name__ == "__main__":
  import argparse

  argparse.ArgumentParser(description=__doc__.strip().splitlines()[0]).parse_args()
  main()
