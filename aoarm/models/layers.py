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


def dense_init(std: float = 0.02, trunc: float = 0.0):
  """Normal(0, std), or cut at +- `trunc` std (`model.init_trunc`; as torch's
  trunc_normal_(std=std, a=-trunc*std, b=trunc*std): std is the uncut distribution's)."""
  if trunc:
    return nn.initializers.truncated_normal(stddev=std, lower=-trunc, upper=trunc)
  return nn.initializers.normal(stddev=std)


def constrain(x_BxLxD: jax.Array) -> jax.Array:
  """Activation sharding at block boundaries (a no-op outside a mesh with logical rules)."""
  return nn.with_logical_constraint(x_BxLxD, ("batch", "length", "act_embed"))


def gelu_exact(x: jax.Array) -> jax.Array:
  """GELU by erf (`model.gelu=exact`; torch's nn.GELU()), in float32."""
  return jax.nn.gelu(x.astype(jnp.float32), approximate=False).astype(x.dtype)


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
  trunc: float = 0.0  # `model.init_trunc`

  @nn.compact
  def __call__(self) -> jax.Array:
    init = nn.with_logical_partitioning(dense_init(self.std, self.trunc), self.names)
    return self.param("kernel", init, self.shape, self.param_dtype)


class Bias(nn.Module):
  """One bias held alone (param `bias`, zeros at init; `model.bias`), for the matmuls above."""

  shape: tuple[int, ...]
  names: tuple[str, ...]
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self) -> jax.Array:
    init = nn.with_logical_partitioning(nn.initializers.zeros, self.names)
    return self.param("bias", init, self.shape, self.param_dtype)


def _dot(x, w):
  """x's last axis against w's first, as nn.Dense computes it."""
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


class Mlp(nn.Module):
  """Two-layer GELU MLP, no biases unless `use_bias`. `impl` (auto | xla | pallas), decided per
  call by `aoarm.kernels.use_mlp`: XLA runs cuBLAS matmuls and the GELU as XLA fusions; the
  kernels run both GELU steps (forward, and the backward's gelu') in matmul epilogues (tanh GELU,
  no biases: other MLPs run in XLA)."""

  d_model: int
  mlp_dim: int
  out_std: float = 0.02
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  impl: str = "xla"
  use_bias: bool = False  # `model.bias`
  exact_gelu: bool = False  # `model.gelu=exact`
  trunc: float = 0.0  # `model.init_trunc`

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    D, F, pdt, t = self.d_model, self.mlp_dim, self.param_dtype, self.trunc
    w_DxF = Kernel((D, F), ("embed", "mlp"), param_dtype=pdt, trunc=t, name="wi")()
    w_FxD = Kernel((F, D), ("mlp", "embed"), self.out_std, pdt, t, name="wo")()
    x_BxLxD, w_DxF, w_FxD = (a.astype(self.dtype) for a in (x_BxLxD, w_DxF, w_FxD))
    unfit = None
    if self.use_bias or self.exact_gelu:
      unfit = "biases or exact GELU (model.bias, model.gelu=exact: XLA only)"
    if kernels.use_mlp(self.impl, x_BxLxD, F, unfit):
      return kernels.mlp(x_BxLxD, w_DxF, w_FxD)
    h_BxLxF = _dot(x_BxLxD, w_DxF)
    if self.use_bias:
      h_BxLxF = h_BxLxF + Bias((F,), ("mlp",), pdt, name="bi")().astype(self.dtype)
    h_BxLxF = gelu_exact(h_BxLxF) if self.exact_gelu else gelu(h_BxLxF)
    h_BxLxF = nn.with_logical_constraint(h_BxLxF, ("batch", "length", "act_mlp"))
    y_BxLxD = _dot(h_BxLxF, w_FxD)
    if self.use_bias:
      y_BxLxD = y_BxLxD + Bias((D,), ("embed",), pdt, name="bo")().astype(self.dtype)
    return y_BxLxD


def token_embed(
  num_embeddings: int, d_model: int, dtype, param_dtype, name="embed", trunc: float = 0.0
) -> nn.Embed:
  """Token table with logical axes (vocab, embed); also used as the tied output head."""
  return nn.Embed(
    num_embeddings,
    d_model,
    dtype=dtype,
    param_dtype=param_dtype,
    name=name,
    embedding_init=nn.with_logical_partitioning(dense_init(0.02, trunc), ("vocab", "embed")),
  )


def position_table(num: int, d_model: int, param_dtype, name: str, trunc: float = 0.0):
  """A learned table of `num` position vectors (sigma-GPT); axes (pos, embed)."""
  return nn.Embed(
    num,
    d_model,
    param_dtype=param_dtype,
    name=name,
    embedding_init=nn.with_logical_partitioning(dense_init(0.02, trunc), ("pos", "embed")),
  )
