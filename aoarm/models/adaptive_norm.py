"""Adaptive layer norm (AO-GPT's way in for the target position, after DiT's adaLN): a per-row
conditioning vector c sets, per block, a shift and scale applied after each of the block's two
norms and a gate on each of its two residual branches; the final norm gets a shift and scale.

    x <- x + gate_attn * Attn(norm1(x) * (1 + scale_attn) + shift_attn)
    x <- x + gate_mlp  * MLP(norm2(x) * (1 + scale_mlp) + shift_mlp)

The projection c -> (shift, scale, gate, ...) is linear with a bias; the caller applies SiLU to c
once (AO-GPT's SiLU -> Linear in every block computes the same SiLU(c) each time).
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm.models import layers


class Modulation(NamedTuple):
  """One block's six per-row vectors, each B x N x D."""

  shift_attn: jax.Array
  scale_attn: jax.Array
  gate_attn: jax.Array
  shift_mlp: jax.Array
  scale_mlp: jax.Array
  gate_mlp: jax.Array


def modulate(xn_BxNxD, shift_BxNxD, scale_BxNxD):
  return xn_BxNxD * (1 + scale_BxNxD) + shift_BxNxD


def _bias_init(rows: tuple[int, ...], value: float):
  """Zeros, except `value` in the given rows (the gates')."""

  def init(key, shape, dtype):
    del key
    b_MxD = jnp.zeros(shape, dtype)
    return b_MxD.at[jnp.asarray(rows, jnp.int32)].set(value) if rows else b_MxD

  return init


class AdaptiveNorm(nn.Module):
  """c B x N x C -> `num` vectors B x N x D: one matmul against a C x num x D kernel, plus a
  bias (zeros at init, except `gate_init` in the rows `gate_rows`)."""

  d_model: int
  num: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  gate_rows: tuple[int, ...] = ()
  gate_init: float = 0.0
  trunc: float = 0.0  # `model.init_trunc`

  @nn.compact
  def __call__(self, c_BxNxC: jax.Array) -> list[jax.Array]:
    C = c_BxNxC.shape[-1]
    names = ("cond", "mod", "embed")
    w_CxMxD = self.param(
      "kernel",
      nn.with_logical_partitioning(layers.dense_init(0.02, self.trunc), names),
      (C, self.num, self.d_model),
      self.param_dtype,
    )
    b_MxD = self.param(
      "bias",
      nn.with_logical_partitioning(_bias_init(self.gate_rows, self.gate_init), names[1:]),
      (self.num, self.d_model),
      self.param_dtype,
    )
    y_BxNxMxD = jnp.einsum("bnc,cmd->bnmd", c_BxNxC.astype(self.dtype), w_CxMxD.astype(self.dtype))
    y_BxNxMxD = y_BxNxMxD + b_MxD.astype(self.dtype)
    return [y_BxNxMxD[:, :, i] for i in range(self.num)]
