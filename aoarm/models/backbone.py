"""The shared stack: token embedding, pre-norm blocks, final norm, output head.

A block is RMSNorm -> attention -> residual, RMSNorm -> MLP -> residual, no biases. A block can
carry a second, query stream `g` (two-stream attention): it shares every weight with the content
stream and attends the content stream's keys/values, never its own.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import rmsnorm
from aoarm.models import cached_attention, layers
from aoarm.models.attention import Attention, RopeIds, resolve_implementation
from aoarm.models.model_config import ModelConfig


class Block(nn.Module):
  cfg: ModelConfig
  causal: bool = True
  use_rope: bool = True

  def setup(self):
    c = self.cfg
    dt, pdt = c.compute_dtype, c.params_dtype
    out_std = 0.02 / (2 * c.num_layers) ** 0.5
    norm_impl = rmsnorm.resolve(c.norm_impl)
    self.norm1 = layers.RMSNorm(dtype=dt, param_dtype=pdt, impl=norm_impl)
    self.norm2 = layers.RMSNorm(dtype=dt, param_dtype=pdt, impl=norm_impl)
    self.attn = Attention(
      num_heads=c.num_heads,
      head_dim=c.head_dim,
      d_model=c.d_model,
      causal=self.causal,
      implementation=resolve_implementation(c.attention_impl, dt),
      decode_impl=cached_attention.resolve(c.decode_impl),
      qkv_impl=c.qkv_impl,  # resolved per call, as mlp_impl
      use_rope=self.use_rope,
      rope_base=c.rope_base,
      order_frac=c.order_dims,
      out_std=out_std,
      capture=c.capture_attention,
      dtype=dt,
      param_dtype=pdt,
    )
    self.mlp = layers.Mlp(
      c.d_model,
      c.hidden_dim,
      out_std=out_std,
      dtype=dt,
      param_dtype=pdt,
      impl=c.mlp_impl,  # resolved per call: auto depends on the input's shape and dtype
    )

  def _finish(self, x, attn_out):
    """The block's output after attention: x + attn_out + MLP(norm(x + attn_out))."""
    x, mlp_out = self._finish_pair(x, attn_out)
    return layers.constrain(x + mlp_out)

  def _finish_pair(self, x, attn_out):
    """(x + attn_out, its MLP output): the block's output as a residual pair whose sum is left
    to the next norm (it adds it in the same kernel)."""
    x, xn = self.norm2(x, keep=True, add=attn_out)
    return layers.constrain(x), layers.constrain(self.mlp(xn))

  def __call__(self, h, ids: RopeIds, g=None, g_ids: RopeIds | None = None, content_out=True):
    """One block on residual pairs (x, pending add or None), each B x L x D: the stream is
    x + add. Returns the pairs (h, g); h is None when content_out is False (only its k/v are
    used), g when there is no query stream."""
    h_out = None
    if content_out:
      x, hn = self.norm1(h[0], keep=True, add=h[1])
      q, k, v = self.attn.query_key_value(hn, ids)
      h_out = self._finish_pair(x, self.attn.attend(q, k, v, "content"))
    else:
      k, v = self.attn.key_value(self.norm1(h[0], add=h[1]), ids)
    g_out = None
    if g is not None:
      xg, gn = self.norm1(g[0], keep=True, add=g[1])
      qg = self.attn.query(gn, g_ids)
      g_out = self._finish_pair(xg, self.attn.attend(qg, k, v, "query"))
    return h_out, g_out

  def extend(self, h_BxNxD, ids: RopeIds, kv, start, content_out: bool = True):
    """N new content rows at rows [start, start+N): write their k/v into the cache `kv` (each
    B x H x S x K) and attend cache rows <= own row. Returns (h or None, updated kv)."""
    k_cache, v_cache = kv
    hn = self.norm1(h_BxNxD)
    k_cache, v_cache = _write(kv, self.attn.key_value(hn, ids), start)
    h_out = None
    if content_out:
      B, N, S = h_BxNxD.shape[0], h_BxNxD.shape[1], k_cache.shape[2]
      mask = None  # one row: it sees [0, start], a prefix, so any implementation will do
      if N > 1:
        mask_NxS = jnp.arange(S)[None, :] <= start + jnp.arange(N)[:, None]
        mask = jnp.broadcast_to(mask_NxS, (B, N, S))
      out = self.attn.attend_cached(self.attn.query(hn, ids), k_cache, v_cache, start + 1, mask)
      h_out = self._finish(h_BxNxD, out)
    return h_out, (k_cache, v_cache)

  def extend_query(self, h_BxNxD, ids, g_BxMxD, g_ids, kv, start, content_out: bool):
    """Both at once: N new content rows written at [start, start+N), then M query rows that
    attend cache rows [0, start+N) of this layer — the new rows included."""
    if h_BxNxD.shape[1] == 1 and self.attn.decode_impl == "pallas":
      return self._extend_query_one(h_BxNxD, ids, g_BxMxD, g_ids, kv, start, content_out)
    h_out, kv = self.extend(h_BxNxD, ids, kv, start, content_out)
    return h_out, self.query(g_BxMxD, g_ids, kv, start + h_BxNxD.shape[1]), kv

  def _extend_query_one(self, h_Bx1xD, ids, g_BxMxD, g_ids, kv, start, content_out: bool):
    """One new content row: it and the query rows see the same prefix [0, start + 1), so a
    single decode-kernel call reads the cache once for all of them, and the output projection
    and MLP run once over the stacked rows (row-wise, so exact)."""
    hn = self.norm1(h_Bx1xD)
    kv = _write(kv, self.attn.key_value(hn, ids), start)
    q = self.attn.query(self.norm1(g_BxMxD), g_ids)
    x = g_BxMxD
    if content_out:
      q = jnp.concatenate([self.attn.query(hn, ids), q], axis=1)
      x = jnp.concatenate([h_Bx1xD, g_BxMxD], axis=1)
    x = self._finish(x, self.attn.attend_cached(q, kv[0], kv[1], start + 1))
    return (x[:, :1], x[:, 1:], kv) if content_out else (None, x, kv)

  def query(self, g_BxNxD, g_ids: RopeIds, kv, length):
    """Query-stream rows against the cache rows [0, length) (length: scalar or per batch)."""
    k_cache, v_cache = kv
    qg = self.attn.query(self.norm1(g_BxNxD), g_ids)
    return self._finish(g_BxNxD, self.attn.attend_cached(qg, k_cache, v_cache, length))


def _write(kv, new_kv, start):
  """Write new keys/values B x N x H x K into the cache (k, v), each B x H x S x K, at row
  `start`; the cache shards like activations."""
  return tuple(
    nn.with_logical_constraint(
      jax.lax.dynamic_update_slice_in_dim(c, x.transpose(0, 2, 1, 3).astype(c.dtype), start, 2),
      ("batch", "act_heads", "length", "kv"),
    )
    for c, x in zip(kv, new_kv)
  )


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

  def setup(self):
    c = self.cfg
    self.embedding = layers.token_embed(c.table_rows, c.d_model, c.compute_dtype, c.params_dtype)
    block = _block_cls(c)
    self.blocks = [
      block(c, self.causal, self.use_rope, name=f"block_{i}") for i in range(c.num_layers)
    ]
    self.final_norm = layers.RMSNorm(
      dtype=c.compute_dtype, param_dtype=c.params_dtype, impl=rmsnorm.resolve(c.norm_impl)
    )
    if not c.tie_embeddings:
      self.head = nn.Dense(
        c.table_rows,
        use_bias=False,
        dtype=c.compute_dtype,
        param_dtype=c.params_dtype,
        kernel_init=nn.with_logical_partitioning(layers.dense_init(), ("embed", "vocab")),
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

  def logits(self, x_BxLxD: jax.Array, add: jax.Array | None = None) -> jax.Array:
    """Final norm and head; logits over the real vocabulary (special row excluded), in the
    compute dtype: a bf16 head's matmul rounds them to bf16 either way, and consumers upcast
    (`losses.token_nll` inside its fused reduction), so B x L x V float32 logits are never
    materialised. The tied head multiplies by the table's first V rows only (no padding).
    `add`: a pending residual sum, added by the final norm."""
    c = self.cfg
    x = self.final_norm(x_BxLxD, add=add)
    if c.tie_embeddings:
      table_VxD = self.embedding.embedding[: c.vocab_size].astype(c.compute_dtype)
      out = jnp.dot(x, table_VxD.T, precision=_exact(c.compute_dtype))
    else:
      out = self.head(x)[..., : c.vocab_size]
    return nn.with_logical_constraint(out, ("batch", "length", "act_vocab"))

  def extend(self, h_BxNxD, ids: RopeIds, cache, start, need_logits: bool = True):
    """Cached decoding: N new content rows at [start, start+N) through every layer.
    `cache`: per layer (k, v), each B x H x S x K. Returns (logits or None, cache)."""
    h, new_cache = h_BxNxD, []
    n = len(self.blocks)
    for i, block in enumerate(self.blocks):
      h, kv = block.extend(h, ids, cache[i], start, need_logits or i < n - 1)
      new_cache.append(kv)
    return (self.logits(h) if need_logits else None), new_cache

  def extend_query(self, h_BxNxD, ids, g_BxMxD, g_ids, cache, start):
    """One pass for a two-stream sampling step: append N content rows at [start, start+N) and
    score M query rows against rows [0, start+N). Returns (query logits, cache)."""
    h, g, new_cache = h_BxNxD, g_BxMxD, []
    n = len(self.blocks)
    for i, block in enumerate(self.blocks):
      h, g, kv = block.extend_query(h, ids, g, g_ids, cache[i], start, i < n - 1)
      new_cache.append(kv)
    return self.logits(g), new_cache

  def query(self, g_BxNxD, g_ids: RopeIds, cache, length):
    """Query-stream rows against cached content rows [0, length): logits B x N x V."""
    g = g_BxNxD
    for i, block in enumerate(self.blocks):
      g = block.query(g, g_ids, cache[i], length)
    return self.logits(g)

  def __call__(self, h_BxLxD, ids: RopeIds, g_BxLxD=None, g_ids: RopeIds | None = None):
    """Runs every block; returns the logits of the predicting stream (g if given, else h)."""
    h = (layers.constrain(h_BxLxD), None)  # residual pairs (x, pending add)
    g = None if g_BxLxD is None else (g_BxLxD, None)
    n = len(self.blocks)
    for i, block in enumerate(self.blocks):
      # The content stream's last-layer output is never used when a query stream predicts.
      h, g = block(h, ids, g, g_ids, g is None or i < n - 1)
    return self.logits(*(g if g is not None else h))
