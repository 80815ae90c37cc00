"""Multi-head attention with separate query/key position ids; fused kernel chosen by config.

`RopeIds` carries the position ids (and, for `rope.order_dims`, the generation-step ids) that
rotate queries and keys. Queries and keys are projected by separate methods so the two-stream
model can project its query stream with the same weights and attend the content stream's keys.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import kernels
from aoarm.models import cached_attention, layers
from aoarm.rope import apply_rope, order_rotary_dims

IMPLEMENTATIONS = ("xla", "cudnn")


class RopeIds(NamedTuple):
  """Position ids for one attention: q_pos B x L (or B x L x H), k_pos B x L; steps likewise."""

  q_pos: jax.Array
  k_pos: jax.Array
  q_step: jax.Array | None = None
  k_step: jax.Array | None = None


def resolve_implementation(impl: str, dtype) -> str:
  """'auto' -> cuDNN on GPU with a 16-bit dtype, else XLA."""
  if impl == "auto":
    on_gpu = jax.default_backend() == "gpu"
    return "cudnn" if on_gpu and jnp.dtype(dtype).itemsize == 2 else "xla"
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"model.attention_impl must be auto|xla|cudnn, got {impl!r}")
  return impl


class Attention(nn.Module):
  num_heads: int
  head_dim: int
  d_model: int
  causal: bool = True
  implementation: str = "xla"
  decode_impl: str = "xla"  # cached decoding: xla | pallas (resolved; see cached_attention)
  qkv_impl: str = "xla"  # q/k/v projection with RoPE: auto | xla | pallas (aoarm.kernels)
  use_rope: bool = True
  qk_norm: bool = False  # RMSNorm over each head's query and key before the rotation (aogpt)
  rope_base: float = 10_000.0
  order_frac: float = 0.0
  out_std: float = 0.02
  capture: bool = False  # sow pre-softmax scores and weights (diagnostics, tests); slow path
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  use_bias: bool = False  # `model.bias`: biases on q, k, v and the output projection
  norm_eps: float = 1e-6  # QK-norm's epsilon (`model.norm_eps`)
  trunc: float = 0.0  # `model.init_trunc`

  def setup(self):
    pdt, t = self.param_dtype, self.trunc
    in_shape, in_names = (self.d_model, self.num_heads, self.head_dim), ("embed", "heads", "kv")
    self.wq, self.wk, self.wv = (
      layers.Kernel(in_shape, in_names, 0.02, pdt, t, name=n) for n in ("wq", "wk", "wv")
    )
    out_shape, out_names = (self.num_heads, self.head_dim, self.d_model), ("heads", "kv", "embed")
    self.wo = layers.Kernel(out_shape, out_names, self.out_std, pdt, t, name="wo")
    self.biases = None  # {kernel name: its bias}, with `use_bias`
    if self.use_bias:
      self.biases = {
        n: layers.Bias(in_shape[1:], in_names[1:], pdt, name=f"b{n[1]}") for n in ("wq", "wk", "wv")
      } | {"wo": layers.Bias((self.d_model,), ("embed",), pdt, name="bo")}
    # QK-norm (AO-GPT): one scale per head dim, shared by the heads
    self.q_norm, self.k_norm = (
      layers.RMSNorm(self.norm_eps, self.dtype, pdt, axis_name="kv", name=n)
      if self.qk_norm
      else None
      for n in ("q_norm", "k_norm")
    )

  def _bias(self, y: jax.Array, kernel: "layers.Kernel") -> jax.Array:
    """y plus the bias of `kernel`'s matmul (with `use_bias`)."""
    if self.biases is None:
      return y
    return y + self.biases[kernel.name]().astype(y.dtype)

  def _out(self, o_BxTxHxK: jax.Array) -> jax.Array:
    """The output projection: heads x head dims -> d_model."""
    w_HxKxD = self.wo().astype(self.dtype)
    return self._bias(jnp.einsum("bthk,hkd->btd", o_BxTxHxK.astype(self.dtype), w_HxKxD), self.wo)

  def _rope(self, x_BxLxHxK, pos, step, norm=None):
    if norm is not None:
      x_BxLxHxK = norm(x_BxLxHxK)
    if not self.use_rope:
      return x_BxLxHxK
    return apply_rope(x_BxLxHxK, pos, step, self.order_frac, self.rope_base)

  def _project(self, x_BxLxD: jax.Array, *kernels: "layers.Kernel") -> list[jax.Array]:
    """x times each D x H x K kernel, as one matmul of width P*H*K over the stacked kernels
    (and one input-gradient matmul in the backward) rather than P matmuls of width H*K."""
    x = x_BxLxD.astype(self.dtype)
    if len(kernels) == 1:
      w_DxHxK = kernels[0]().astype(self.dtype)
      return [self._bias(jnp.einsum("bld,dhk->blhk", x, w_DxHxK), kernels[0])]
    w_DxPxHxK = jnp.stack([w().astype(self.dtype) for w in kernels], axis=1)
    y_BxLxPxHxK = jnp.einsum("bld,dphk->blphk", x, w_DxPxHxK)
    # split (not indexing): its transpose is one concatenation of the three gradients, where
    # slices transpose to pads that the backward adds up (222 us against 146 per layer, H100)
    ys = [y[:, :, 0] for y in jnp.split(y_BxLxPxHxK, len(kernels), axis=2)]
    return [self._bias(y, w) for y, w in zip(ys, kernels, strict=True)]

  def query(self, x_BxLxD: jax.Array, ids: RopeIds) -> jax.Array:
    return self._rope(self._project(x_BxLxD, self.wq)[0], ids.q_pos, ids.q_step, self.q_norm)

  def key_value(self, x_BxLxD: jax.Array, ids: RopeIds) -> tuple[jax.Array, jax.Array]:
    k, v = self._project(x_BxLxD, self.wk, self.wv)
    return self._rope(k, ids.k_pos, ids.k_step, self.k_norm), v

  def query_key_value(self, x_BxLxD: jax.Array, ids: RopeIds):
    """q, k, v of the same rows in one matmul (with the rotation in its epilogue where
    `model.kernels.qkv` takes the kernel: rotary ids per row, no generation-step dims; without RoPE
    (sigma_gpt) the kernel rotates by angle 0, which leaves q and k bit-equal)."""
    unfit = None
    if self.use_rope:
      q_pos, k_pos = ids.q_pos, ids.k_pos
      if order_rotary_dims(self.head_dim, self.order_frac) or not q_pos.ndim == k_pos.ndim == 2:
        unfit = "rotary ids per head or rope.order_dims > 0 (XLA's rotation only)"
    else:
      q_pos = k_pos = jnp.zeros(x_BxLxD.shape[:-1], jnp.int32)
    if self.qk_norm:
      unfit = "QK-norm before the rotation (XLA only)"
    if self.use_bias:
      unfit = "biases on q, k, v (model.bias: XLA only)"
    hk = self.num_heads * self.head_dim
    if kernels.use_qkv(self.qkv_impl, x_BxLxD.astype(self.dtype), hk, self.head_dim, unfit):
      w = jnp.stack([w().astype(self.dtype) for w in (self.wq, self.wk, self.wv)], axis=1)
      return tuple(
        kernels.qkv(
          x_BxLxD.astype(self.dtype),
          w.reshape(self.d_model, 3 * hk),
          q_pos,
          k_pos,
          self.head_dim,
          self.rope_base,
        )
      )
    q, k, v = self._project(x_BxLxD, self.wq, self.wk, self.wv)
    q = self._rope(q, ids.q_pos, ids.q_step, self.q_norm)
    return q, self._rope(k, ids.k_pos, ids.k_step, self.k_norm), v

  def attend(self, q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, tag: str = "content") -> jax.Array:
    """softmax(q k^T / sqrt(K)) v, causal over rows if self.causal; then the output projection."""
    q_BxTxHxK = nn.with_logical_constraint(q_BxTxHxK, ("batch", "length", "act_heads", "kv"))
    if self.capture:
      out_BxTxHxK = self._explicit(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, tag)
    else:
      out_BxTxHxK = jax.nn.dot_product_attention(
        q_BxTxHxK,
        k_BxSxHxK,
        v_BxSxHxK,
        is_causal=self.causal,
        implementation=self.implementation,
      )
    return self._out(out_BxTxHxK)

  def attend_cached(self, q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B, mask_BxTxS=None):
    """New rows against a KV cache laid out B x H x S x K (cached decoding), then the output
    projection. Either every row of batch b sees cache rows [0, length_B[b]) (mask None), or
    `mask_BxTxS` says which rows each sees (always the XLA path)."""
    if mask_BxTxS is None and self.decode_impl == "pallas":
      out_BxTxHxK = kernels.decode_attention(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B)
    else:
      if mask_BxTxS is None:
        B, T, S = q_BxTxHxK.shape[0], q_BxTxHxK.shape[1], k_BxHxSxK.shape[2]
        mask_BxTxS = cached_attention.prefix_mask(B, T, S, length_B)
      out_BxTxHxK = cached_attention.attend_xla(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, mask_BxTxS)
    return self._out(out_BxTxHxK)

  def _explicit(self, q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, tag):
    scale = self.head_dim**-0.5
    s_BxHxTxS = (
      jnp.einsum("bthk,bshk->bhts", q_BxTxHxK, k_BxSxHxK, preferred_element_type=jnp.float32)
      * scale
    )
    T, S = s_BxHxTxS.shape[-2:]
    if self.causal:
      s_BxHxTxS = jnp.where(jnp.tril(jnp.ones((T, S), bool)), s_BxHxTxS, -jnp.inf)
    w_BxHxTxS = jax.nn.softmax(s_BxHxTxS, axis=-1)
    self.sow("intermediates", f"{tag}_scores", s_BxHxTxS)
    self.sow("intermediates", f"{tag}_weights", w_BxHxTxS)
    return jnp.einsum("bhts,bshk->bthk", w_BxHxTxS.astype(v_BxSxHxK.dtype), v_BxSxHxK)
