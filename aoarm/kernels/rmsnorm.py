"""RMSNorm as two Pallas kernels (forward, backward) that read each operand once.

XLA splits an RMSNorm into passes: forward, a row reduction then a normalising pass (x read
twice); backward, a fusion for d x and a column reduction for d scale (x and d y read again).
`norm` does each direction in one kernel. With `keep=True` it also returns x itself, so that
the cotangent of x's other use (the residual branch) arrives in the same backward call and is
added there rather than by one more pass over B x L x D. The XLA definition is
`models.layers.rms_norm`; when the model takes the kernels is `aoarm.kernels`'s `AUTO` table.
Under a mesh of several devices each device runs them on its own rows (`sharding.per_device`).
Off GPU they run only in Pallas's interpreter, where tests ask for it (`aoarm.kernels`).
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax.sharding import PartitionSpec as P

from aoarm.infra import sharding


def norm(
  x_BxLxD,
  scale_D,
  eps: float,
  dtype,
  keep: bool = False,
  add=None,
  blocks: tuple[int, int, int] | None = None,
):
  """RMSNorm of the last axis in `dtype`; with keep=True, (x, norm(x)). With `add`, x + add
  (in x's dtype) takes x's place: the residual sum is formed in the same kernel. `blocks`: rows
  per program, rows per step inside it, warps (the backward's d scale is summed per program);
  default: up to 64 and 8 rows (powers of two dividing the row count), 8 warps."""
  spec = P(sharding.BATCH_AXES)  # under a mesh: each device normalises its own rows
  if add is None:
    return sharding.per_device(
      lambda x, s: _local(x, None, s, eps, dtype, keep, blocks),
      (x_BxLxD, scale_D),
      (spec, P()),
      (spec, spec) if keep else spec,
    )
  return sharding.per_device(
    lambda x, a, s: _local(x, a, s, eps, dtype, keep, blocks),
    (x_BxLxD, add.astype(x_BxLxD.dtype), scale_D),
    (spec, spec, P()),
    (spec, spec) if keep else spec,
  )


def _local(x_BxLxD, a_BxLxD, scale_D, eps, dtype, keep, blocks):
  *lead, D = x_BxLxD.shape
  x_NxD = x_BxLxD.reshape(-1, D)
  a_NxD = None if a_BxLxD is None else a_BxLxD.reshape(-1, D)
  if blocks is None:
    rows = math.gcd(x_NxD.shape[0], 64)
    blocks = (rows, min(rows, 8), 8)
  if x_NxD.shape[0] % blocks[0] or blocks[0] % blocks[1]:
    raise ValueError(f"RMSNorm blocks {blocks} do not tile {x_NxD.shape[0]} rows")
  out = _norm(x_NxD, a_NxD, scale_D, eps, jnp.dtype(dtype), keep, blocks)
  if keep:  # the x returned is the custom_vjp's: its cotangent reaches the backward kernel
    return tuple(a.reshape(*lead, D) for a in out)
  return out.reshape(*lead, D)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _norm(x_NxD, a_NxD, scale_D, eps, dtype, keep, blocks):
  return _norm_fwd(x_NxD, a_NxD, scale_D, eps, dtype, keep, blocks)[0]


def _norm_fwd(x_NxD, a_NxD, scale_D, eps, dtype, keep, blocks):
  """Residuals: the normalised input (the sum x + a, when added here) and the scale."""
  if a_NxD is None:
    y_NxD = _forward(x_NxD, scale_D, eps, dtype, blocks)
  else:
    x_NxD, y_NxD = _forward_add(x_NxD, a_NxD, scale_D, eps, dtype, blocks)
  return ((x_NxD, y_NxD) if keep else y_NxD), (x_NxD, scale_D, a_NxD is not None)


def _norm_bwd(eps, dtype, keep, blocks, res, ct):
  x_NxD, scale_D, added = res
  dx_id, dy = ct if keep else (None, ct)
  dx_NxD, dscale_GxD = _backward(x_NxD, scale_D, dy, dx_id, eps, blocks)
  # With an add, x and a receive the same cotangent (that of their sum).
  return dx_NxD, (dx_NxD if added else None), dscale_GxD.sum(axis=0).astype(scale_D.dtype)


_norm.defvjp(_norm_fwd, _norm_bwd)


def _cols(D: int):
  """A power-of-two column block covering D (Triton's block shapes) and its mask."""
  Dp = pl.next_power_of_2(D)
  return Dp, (jnp.arange(Dp) < D)


def _block(j, sub: int, Dp: int):
  """Step j's rows of a program's block, all (padded) columns."""
  return pl.ds(j * sub, sub), pl.ds(0, Dp)


def _rows(ref, blk, mask_D):
  return plgpu.load(ref.at[blk], mask=mask_D[None, :], other=0.0).astype(jnp.float32)


def _fwd_kernel(*refs, D: int, sub: int, eps: float, add: bool):
  if add:
    x_ref, a_ref, s_ref, sum_ref, y_ref = refs
  else:
    x_ref, s_ref, y_ref = refs
  Dp, m_D = _cols(D)
  s_D = plgpu.load(s_ref.at[pl.ds(0, Dp)], mask=m_D, other=0.0).astype(jnp.float32)

  def body(j, carry):
    blk = _block(j, sub, Dp)
    x = _rows(x_ref, blk, m_D)
    if add:  # the residual sum, rounded to x's dtype as an XLA add would, then normalised
      xs = (x + _rows(a_ref, blk, m_D)).astype(sum_ref.dtype)
      plgpu.store(sum_ref.at[blk], xs, mask=m_D[None, :])
      x = xs.astype(jnp.float32)
    r = jax.lax.rsqrt(jnp.sum(x * x, axis=1) / D + eps)
    y = (x * r[:, None] * s_D[None, :]).astype(y_ref.dtype)
    plgpu.store(y_ref.at[blk], y, mask=m_D[None, :])
    return carry

  jax.lax.fori_loop(0, x_ref.shape[0] // sub, body, 0)


def _bwd_kernel(*refs, D: int, sub: int, eps: float, add_id: bool):
  if add_id:
    x_ref, s_ref, dy_ref, did_ref, dx_ref, ds_ref = refs
  else:
    x_ref, s_ref, dy_ref, dx_ref, ds_ref = refs
  Dp, m_D = _cols(D)
  s_D = plgpu.load(s_ref.at[pl.ds(0, Dp)], mask=m_D, other=0.0).astype(jnp.float32)

  def body(j, ds_SxD):
    blk = _block(j, sub, Dp)
    x = _rows(x_ref, blk, m_D)
    dy = _rows(dy_ref, blk, m_D)
    r = jax.lax.rsqrt(jnp.sum(x * x, axis=1) / D + eps)
    xh = x * r[:, None]
    dxh = dy * s_D[None, :]
    c = jnp.sum(dxh * xh, axis=1) / D
    dx = r[:, None] * (dxh - xh * c[:, None])
    if add_id:
      dx = dx + _rows(did_ref, blk, m_D)
    plgpu.store(dx_ref.at[blk], dx.astype(dx_ref.dtype), mask=m_D[None, :])
    return ds_SxD + dy * xh  # summed over rows once, after the loop (no per-step cross-warp sum)

  ds_SxD = jax.lax.fori_loop(0, x_ref.shape[0] // sub, body, jnp.zeros((sub, Dp), jnp.float32))
  plgpu.store(ds_ref.at[:, pl.ds(0, Dp)], jnp.sum(ds_SxD, axis=0)[None, :], mask=m_D[None, :])


def _params(blocks):
  return plgpu.CompilerParams(num_warps=blocks[2], num_stages=2)


def _call_forward(operands, scale_D, eps, dtype, blocks, add: bool):
  N, D = operands[0].shape
  rows, sub, _ = blocks
  row_spec = pl.BlockSpec((rows, D), lambda i: (i, 0))
  y_shape = jax.ShapeDtypeStruct((N, D), dtype)
  return pl.pallas_call(
    functools.partial(_fwd_kernel, D=D, sub=sub, eps=eps, add=add),
    grid=(N // rows,),
    in_specs=[row_spec] * len(operands) + [pl.BlockSpec((D,), lambda i: (0,))],
    out_specs=[row_spec, row_spec] if add else row_spec,
    out_shape=[jax.ShapeDtypeStruct((N, D), operands[0].dtype), y_shape] if add else y_shape,
    compiler_params=_params(blocks),
    interpret=jax.default_backend() != "gpu",
    name="rms_norm_add_fwd" if add else "rms_norm_fwd",
  )(*operands, scale_D)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _forward(x_NxD, scale_D, eps, dtype, blocks):
  return _call_forward([x_NxD], scale_D, eps, dtype, blocks, add=False)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _forward_add(x_NxD, a_NxD, scale_D, eps, dtype, blocks):
  """(x + a, norm(x + a))."""
  return tuple(_call_forward([x_NxD, a_NxD], scale_D, eps, dtype, blocks, add=True))


@functools.partial(jax.jit, static_argnums=(4, 5))
def _backward(x_NxD, scale_D, dy_NxD, dx_id_NxD, eps, blocks):
  """d x (x's dtype; plus dx_id when given) and per-program partial sums of d scale (G x D)."""
  N, D = x_NxD.shape
  rows, sub, _ = blocks
  row_spec = pl.BlockSpec((rows, D), lambda i: (i, 0))
  add_id = dx_id_NxD is not None
  operands = [x_NxD, scale_D, dy_NxD] + ([dx_id_NxD] if add_id else [])
  return pl.pallas_call(
    functools.partial(_bwd_kernel, D=D, sub=sub, eps=eps, add_id=add_id),
    grid=(N // rows,),
    in_specs=[row_spec, pl.BlockSpec((D,), lambda i: (0,)), row_spec] + [row_spec] * add_id,
    out_specs=[row_spec, pl.BlockSpec((1, D), lambda i: (i, 0))],
    out_shape=[
      jax.ShapeDtypeStruct((N, D), x_NxD.dtype),
      jax.ShapeDtypeStruct((N // rows, D), jnp.float32),
    ],
    compiler_params=_params(blocks),
    interpret=jax.default_backend() != "gpu",
    name="rms_norm_bwd",
  )(*operands)
