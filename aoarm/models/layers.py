"""Backbone building blocks: RMSNorm, MLP, token embedding. Every parameter has logical axis names.

Logical axes used across the models (mapped to mesh axes by the rule table in the config):
  vocab, embed, mlp, heads, kv, pos — and for activations: batch, length, act_embed, act_heads.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import kernels
from aoarm.kernels.gelu_math import GELU_A3, GELU_C, gelu_derivative  # noqa: F401 (re-exported)

Dtype = jnp.dtype


def dense_init(std: float = 0.02):
  return nn.initializers.normal(stddev=std)


def constrain(x_BxLxD: jax.Array) -> jax.Array:
  """Activation sharding at block boundaries (a no-op outside a mesh with logical rules)."""
  return nn.with_logical_constraint(x_BxLxD, ("batch", "length", "act_embed"))


def rms_norm(x, scale_D, eps: float, dtype):
  """The definition, in float32: x / sqrt(mean(x^2) + eps) * scale, cast to `dtype`."""
  x = x.astype(jnp.float32)
  x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)
  return (x * scale_D.astype(jnp.float32)).astype(dtype)


class RMSNorm(nn.Module):
  """Root-mean-square layer norm, computed in float32, learned scale. `impl` ('xla' or
  'pallas', resolved by `aoarm.kernels`) picks XLA or the one-read kernels; with keep=True the
  call returns (x, norm(x)), and x's other uses should take that x, so the kernels' backward
  adds their gradient in the same call. With `add`, x + add is normalised (and kept): a pending
  residual sum, which the kernels form in the same call."""

  eps: float = 1e-6
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  impl: str = "xla"
  axis_name: str = "embed"  # the scale's logical axis ("kv" for a per-head norm)

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array, keep: bool = False, add: jax.Array | None = None):
    D = x_BxLxD.shape[-1]
    scale_D = self.param(
      "scale",
      nn.with_logical_partitioning(nn.initializers.ones, (self.axis_name,)),
      (D,),
      self.param_dtype,
    )
    if self.impl == "pallas":
      return kernels.rms_norm(x_BxLxD, scale_D, self.eps, self.dtype, keep, add)
    if add is not None:
      x_BxLxD = x_BxLxD + add.astype(x_BxLxD.dtype)
    y = rms_norm(x_BxLxD, scale_D, self.eps, self.dtype)
    return (x_BxLxD, y) if keep else y


@jax.custom_vjp
def gelu(x: jax.Array) -> jax.Array:
  """tanh-approximate GELU (= `nn.gelu`), whose backward keeps only its input.

  Autodiff of `nn.gelu` saves a second tensor of the MLP's width for the backward (the forward
  fusion writes it beside the output) and adds two cotangent terms there: at 12/768, B=32,
  L=1024 that is 2 x 200 MB more memory traffic per layer. Here the backward recomputes the
  derivative from x, in float32."""
  return nn.gelu(x)


def _gelu_fwd(x):
  return nn.gelu(x), x


def _gelu_bwd(x, g):
  d = gelu_derivative(x.astype(jnp.float32))
  return ((g.astype(jnp.float32) * d).astype(g.dtype),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


class Kernel(nn.Module):
  """One weight held alone (param `kernel`, as nn.Dense names it), for matmuls written by hand:
  the stacked q/k/v projection, the MLP's kernels. No flat-shaped init runs under a mesh."""

  shape: tuple[int, ...]
  names: tuple[str, ...]
  std: float = 0.02
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self) -> jax.Array:
    init = nn.with_logical_partitioning(dense_init(self.std), self.names)
    return self.param("kernel", init, self.shape, self.param_dtype)


def _dot(x, w):
  """x's last axis against w's first, as nn.Dense computes it."""
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


class Mlp(nn.Module):
  """Two-layer GELU MLP, no biases. `impl` (auto | xla | pallas), decided per call by
  `aoarm.kernels.use_mlp`: XLA runs cuBLAS matmuls and the GELU as XLA fusions; the kernels
  run both GELU steps (forward, and the backward's gelu') in matmul epilogues."""

  d_model: int
  mlp_dim: int
  out_std: float = 0.02
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  impl: str = "xla"

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    D, F = self.d_model, self.mlp_dim
    w_DxF = Kernel((D, F), ("embed", "mlp"), param_dtype=self.param_dtype, name="wi")()
    w_FxD = Kernel((F, D), ("mlp", "embed"), self.out_std, self.param_dtype, name="wo")()
    x_BxLxD, w_DxF, w_FxD = (a.astype(self.dtype) for a in (x_BxLxD, w_DxF, w_FxD))
    if kernels.use_mlp(self.impl, x_BxLxD, F):
      return kernels.mlp(x_BxLxD, w_DxF, w_FxD)
    h_BxLxF = nn.with_logical_constraint(gelu(_dot(x_BxLxD, w_DxF)), ("batch", "length", "act_mlp"))
    return _dot(h_BxLxF, w_FxD)


def token_embed(num_embeddings: int, d_model: int, dtype, param_dtype, name="embed") -> nn.Embed:
  """Token table with logical axes (vocab, embed); also used as the tied output head."""
  return nn.Embed(
    num_embeddings,
    d_model,
    dtype=dtype,
    param_dtype=param_dtype,
    name=name,
    embedding_init=nn.with_logical_partitioning(dense_init(), ("vocab", "embed")),
  )


def position_table(num: int, d_model: int, param_dtype, name: str):
  """A learned table of `num` position vectors (sigma-GPT); axes (pos, embed)."""
  return nn.Embed(
    num,
    d_model,
    param_dtype=param_dtype,
    name=name,
    embedding_init=nn.with_logical_partitioning(dense_init(), ("pos", "embed")),
  )
