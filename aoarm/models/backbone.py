"""The shared stack: token embedding, pre-norm blocks, final norm, output head.

A block is RMSNorm -> attention -> residual, RMSNorm -> MLP -> residual, no biases (unless
`model.bias`: AO-GPT's and GPT-2's, on every Linear). A block can
carry a second, query stream `g` (two-stream attention): it shares every weight with the content
stream and attends the content stream's keys/values, never its own; with `model.query_layers`
the query stream exists only in the top blocks. With `cond_dim`, a per-row conditioning vector
modulates every norm and gates every branch (`models.adaptive_norm`, aogpt). Cached decoding
runs these blocks row by row: `models.decoding`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import kernels
from aoarm.models import layers
from aoarm.models.adaptive_norm import AdaptiveNorm, Modulation, modulate
from aoarm.models.attention import Attention, RopeIds, resolve_implementation
from aoarm.models.model_config import ModelConfig


class Block(nn.Module):
  cfg: ModelConfig
  causal: bool = True
  use_rope: bool = True
  cond_dim: int = 0  # > 0: adaptive norm from a per-row conditioning vector this wide
  qk_norm: bool = False

  def setup(self):
    c = self.cfg
    dt, pdt = c.compute_dtype, c.params_dtype
    out_std = 0.02 / (2 * c.num_layers) ** 0.5
    norm_impl = kernels.resolve("norm", c.kernels.norm)
    self.norm1 = layers.RMSNorm(c.norm_eps, dt, pdt, impl=norm_impl)
    self.norm2 = layers.RMSNorm(c.norm_eps, dt, pdt, impl=norm_impl)
    self.attn = Attention(
      num_heads=c.num_heads,
      head_dim=c.head_dim,
      d_model=c.d_model,
      causal=self.causal,
      implementation=resolve_implementation(c.kernels.attention, dt),
      decode_impl=kernels.resolve("decode", c.kernels.decode),
      qkv_impl=c.kernels.qkv,  # resolved per call, as the MLP's
      use_rope=self.use_rope,
      qk_norm=self.qk_norm,
      rope_base=c.rope_base,
      order_frac=c.order_dims,
      out_std=out_std,
      capture=c.capture_attention,
      dtype=dt,
      param_dtype=pdt,
      use_bias=c.bias,
      norm_eps=c.norm_eps,
      trunc=c.init_trunc,
    )
    self.mlp = layers.Mlp(
      c.d_model,
      c.hidden_dim,
      out_std=out_std,
      dtype=dt,
      param_dtype=pdt,
      impl=c.kernels.mlp,  # resolved per call: auto depends on the input's shape and dtype
      use_bias=c.bias,
      exact_gelu=c.gelu == "exact",
      trunc=c.init_trunc,
    )
    if self.cond_dim:
      gates = (Modulation._fields.index("gate_attn"), Modulation._fields.index("gate_mlp"))
      self.ada = AdaptiveNorm(c.d_model, 6, dt, pdt, gates, c.ada_gate_init, c.init_trunc)

  def modulation(self, cond_BxNxC) -> Modulation | None:
    """This block's shifts, scales and gates for conditioning rows (None: no adaptive norm)."""
    return None if cond_BxNxC is None else Modulation(*self.ada(cond_BxNxC))

  def attn_input(self, x, mod: Modulation | None = None, add=None, keep: bool = True):
    """The attention's input: norm1 of x + add, modulated; with keep, (x + add, that)."""
    out = self.norm1(x, keep=keep, add=add)
    xn = out[1] if keep else out
    xn = xn if mod is None else modulate(xn, mod.shift_attn, mod.scale_attn)
    return (out[0], xn) if keep else xn

  def finish(self, x, attn_out, mod: Modulation | None = None):
    """The block's output after attention: x + attn_out + MLP(norm(x + attn_out)) (gated and
    modulated by `mod` where given)."""
    x, mlp_out = self._finish_pair(x, attn_out, mod)
    return layers.constrain(x + mlp_out)

  def _finish_pair(self, x, attn_out, mod: Modulation | None = None):
    """(x + attn_out, its MLP output): the block's output as a residual pair whose sum is left
    to the next norm (it adds it in the same kernel)."""
    if mod is not None:
      attn_out = attn_out * mod.gate_attn
    x, xn = self.norm2(x, keep=True, add=attn_out)
    if mod is None:
      return layers.constrain(x), layers.constrain(self.mlp(xn))
    mlp_out = self.mlp(modulate(xn, mod.shift_mlp, mod.scale_mlp)) * mod.gate_mlp
    return layers.constrain(x), layers.constrain(mlp_out)

  def __call__(
    self, h, ids: RopeIds, g=None, g_ids: RopeIds | None = None, content_out=True, cond=None
  ):
    """One block on residual pairs (x, pending add or None), each B x L x D: the stream is
    x + add. Returns the pairs (h, g); h is None when content_out is False (only its k/v are
    used), g when there is no query stream. `cond`: the content rows' conditioning vectors
    (with `cond_dim`)."""
    h_out = None
    mod = self.modulation(cond)
    if content_out:
      x, hn = self.attn_input(h[0], mod, add=h[1])
      q, k, v = self.attn.query_key_value(hn, ids)
      h_out = self._finish_pair(x, self.attn.attend(q, k, v, "content"), mod)
    else:
      k, v = self.attn.key_value(self.attn_input(h[0], mod, add=h[1], keep=False), ids)
    g_out = None
    if g is not None:
      xg, gn = self.norm1(g[0], keep=True, add=g[1])
      qg = self.attn.query(gn, g_ids)
      g_out = self._finish_pair(xg, self.attn.attend(qg, k, v, "query"))
    return h_out, g_out


def _exact(dtype):
  """float32 models (tests, CPU) multiply at full precision; 16-bit ones at the default."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def _block_cls(cfg: ModelConfig):
  if cfg.remat == "none":
    return Block
  policy = None if cfg.remat == "full" else jax.checkpoint_policies.dots_with_no_batch_dims_saveable
  return nn.remat(Block, policy=policy, static_argnums=(5,))


class Backbone(nn.Module):
  """Embedding table (num_tokens = vocab + 1 special row), blocks, final norm, head."""

  cfg: ModelConfig
  causal: bool = True
  use_rope: bool = True
  cond_dim: int = 0  # > 0: adaptive norms conditioned per row (Block), the final one too
  qk_norm: bool = False

  def setup(self):
    c = self.cfg
    self.embedding = layers.token_embed(
      c.table_rows, c.d_model, c.compute_dtype, c.params_dtype, trunc=c.init_trunc
    )
    block = _block_cls(c)
    self.blocks = [
      block(c, self.causal, self.use_rope, self.cond_dim, self.qk_norm, name=f"block_{i}")
      for i in range(c.num_layers)
    ]
    if self.cond_dim:
      self.final_ada = AdaptiveNorm(
        c.d_model, 2, c.compute_dtype, c.params_dtype, trunc=c.init_trunc
      )
    self.final_norm = layers.RMSNorm(
      c.norm_eps,
      dtype=c.compute_dtype,
      param_dtype=c.params_dtype,
      impl=kernels.resolve("norm", c.kernels.norm),
    )
    if not c.tie_embeddings:
      self.head = nn.Dense(
        c.table_rows,
        use_bias=c.bias,
        dtype=c.compute_dtype,
        param_dtype=c.params_dtype,
        kernel_init=nn.with_logical_partitioning(
          layers.dense_init(0.02, c.init_trunc), ("embed", "vocab")
        ),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
        name="head",
      )

  @property
  def special_id(self) -> int:
    """The extra embedding row: BOS for causal variants, MASK for mdm."""
    return self.cfg.vocab_size

  def embed(self, tokens_BxL: jax.Array) -> jax.Array:
    c = self.cfg
    dt = c.compute_dtype
    if not c.onehot_embed:
      # The gather's gradient is a scatter-add, which serialises on a repeated row: mdm's MASK
      # (half of all rows) made an mdm step 2.3x slower than ar at 12/768, V=50304. So the
      # special row is looked up by a select (its gradient is a sum), and the gather reads a
      # spread of real rows there instead (zero gradient, no contention). Same values.
      table_RxD = self.embedding.embedding
      special_BxL = tokens_BxL == self.special_id
      spread_BxL = jnp.arange(tokens_BxL.shape[-1]) % c.vocab_size
      x = jnp.take(table_RxD, jnp.where(special_BxL, spread_BxL, tokens_BxL), axis=0)
      x = jnp.where(special_BxL[..., None], table_RxD[self.special_id], x)
      return x.astype(dt)
    onehot_BxLxR = jax.nn.one_hot(tokens_BxL, c.table_rows, dtype=dt)
    table_RxD = self.embedding.embedding.astype(dt)
    return jnp.dot(onehot_BxLxR, table_RxD, precision=_exact(dt))

  def logits(self, x_BxLxD: jax.Array, add: jax.Array | None = None, cond=None) -> jax.Array:
    """Final norm and head; logits over the real vocabulary (special row excluded), in the
    compute dtype: a bf16 head's matmul rounds them to bf16 either way, and consumers upcast
    (`losses.token_nll` inside its fused reduction), so B x L x V float32 logits are never
    materialised. The tied head multiplies by the table's first V rows only (no padding).
    `add`: a pending residual sum, added by the final norm; `cond`: the rows' conditioning
    vectors, which shift and scale the final norm's output (with `cond_dim`)."""
    c = self.cfg
    x = self.final_norm(x_BxLxD, add=add)
    if cond is not None:
      x = modulate(x, *self.final_ada(cond))
    if c.tie_embeddings:
      table_VxD = self.embedding.embedding[: c.vocab_size].astype(c.compute_dtype)
      out = jnp.dot(x, table_VxD.T, precision=_exact(c.compute_dtype))
    else:
      out = self.head(x)[..., : c.vocab_size]
    return nn.with_logical_constraint(out, ("batch", "length", "act_vocab"))

  def __call__(
    self, h_BxLxD, ids: RopeIds, g_BxLxD=None, g_ids: RopeIds | None = None, cond_BxLxC=None
  ):
    """Runs every block; returns the logits of the predicting stream (g if given, else h). The
    query stream g enters at block `cfg.first_query_layer`; `cond`: the content rows'
    conditioning vectors (with `cond_dim`)."""
    h = (layers.constrain(h_BxLxD), None)  # residual pairs (x, pending add)
    g = None if g_BxLxD is None else (g_BxLxD, None)
    n = len(self.blocks)
    for i, block in enumerate(self.blocks):
      # The content stream's last-layer output is never used when a query stream predicts.
      g_in = g if i >= self.cfg.first_query_layer else None
      h, g_out = block(h, ids, g_in, g_ids, g is None or i < n - 1, cond_BxLxC)
      g = g_out if g_in is not None else g
    if g is not None:
      return self.logits(*g)
    return self.logits(*h, cond=cond_BxLxC)
