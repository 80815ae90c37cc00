"""Cached decoding on the shared stack (docs/sampling.md): content rows appended to a per-layer
key/value cache, and query rows scored against it. The parameter tree is the backbone's own;
these functions run the backbone's bound blocks row by row, so cached and full forwards compute
the same function (tests/test_sampling.py checks their log-probs agree).

A variant's sampler family (`Traits.sampler`) fixes which protocol its module implements.
"""

from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import kernels
from aoarm.models.attention import RopeIds
from aoarm.models.inputs import Rows

Cache = list[tuple[jax.Array, jax.Array]]  # per layer (k, v), each B x H x S x K


class NextRowDecoder(Protocol):
  """sampler 'next_row': each new content row's output predicts the next target of an order
  drawn in advance (its deeper keys/values depend on that target)."""

  def decode(self, prev_BxN, rows: Rows, cache: Cache, start) -> tuple[jax.Array, Cache]:
    """Content rows holding `prev` tokens (BOS = vocab_size) at [start, start+N): their
    logits B x N x V and the cache with their keys/values."""


class QueryDecoder(Protocol):
  """sampler 'query': content rows enter the cache; query rows score any target positions."""

  def step(self, prev_BxN, rows: Rows, tgt_BxM, cache: Cache, start) -> tuple[jax.Array, Cache]:
    """Append content rows at [start, start+N) and score targets against rows [0, start+N)."""

  def query(self, tgt_BxN, cache: Cache, length) -> jax.Array:
    """Logits B x N x V of target positions against cache rows [0, length)."""


def init_cache(mcfg, batch: int, rows: int, dtype=None) -> Cache:
  """Zeros for `rows` cache entries per layer, padded as the decode kernel needs."""
  S = kernels.cache_rows(rows, mcfg.kernels.decode)
  shape = (batch, mcfg.num_heads, S, mcfg.head_dim)
  dtype = dtype or mcfg.compute_dtype
  return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(mcfg.num_layers)]


# -- the backbone --------------------------------------------------------------------------


def extend(
  backbone, h_BxNxD, ids: RopeIds, cache: Cache, start, need_logits: bool = True, cond=None
):
  """N new content rows at [start, start+N) through every layer: (logits or None, cache).
  `cond`: their conditioning vectors B x N x C (a backbone with adaptive norms)."""
  h, new_cache = h_BxNxD, []
  n = len(backbone.blocks)
  for i, block in enumerate(backbone.blocks):
    h, kv = _extend(block, h, ids, cache[i], start, need_logits or i < n - 1, cond)
    new_cache.append(kv)
  return (backbone.logits(h, cond=cond) if need_logits else None), new_cache


def extend_query(backbone, h_BxNxD, ids, g_BxMxD, g_ids, cache: Cache, start):
  """One pass of a two-stream sampling step: append N content rows at [start, start+N) and
  score M query rows against rows [0, start+N) (in the blocks from `first_query_layer` up).
  Returns (query logits, cache)."""
  h, g, new_cache = h_BxNxD, g_BxMxD, []
  n, first = len(backbone.blocks), backbone.cfg.first_query_layer
  for i, block in enumerate(backbone.blocks):
    if i < first:
      h, kv = _extend(block, h, ids, cache[i], start)
    else:
      h, g, kv = _extend_query(block, h, ids, g, g_ids, cache[i], start, i < n - 1)
    new_cache.append(kv)
  return backbone.logits(g), new_cache


def query(backbone, g_BxNxD, g_ids: RopeIds, cache: Cache, length):
  """Query-stream rows against cached content rows [0, length): logits B x N x V."""
  g = g_BxNxD
  for i in range(backbone.cfg.first_query_layer, len(backbone.blocks)):
    g = _query(backbone.blocks[i], g, g_ids, cache[i], length)
  return backbone.logits(g)


# -- one block -----------------------------------------------------------------------------


def _extend(block, h_BxNxD, ids: RopeIds, kv, start, content_out: bool = True, cond=None):
  """Write the new rows' k/v into this layer's cache and attend cache rows <= own row."""
  mod = block.modulation(cond)
  hn = block.attn_input(h_BxNxD, mod, keep=False)
  k_cache, v_cache = _write(kv, block.attn.key_value(hn, ids), start)
  h_out = None
  if content_out:
    B, N, S = h_BxNxD.shape[0], h_BxNxD.shape[1], k_cache.shape[2]
    mask = None  # one row: it sees [0, start], a prefix, so any implementation will do
    if N > 1:
      mask_NxS = jnp.arange(S)[None, :] <= start + jnp.arange(N)[:, None]
      mask = jnp.broadcast_to(mask_NxS, (B, N, S))
    out = block.attn.attend_cached(block.attn.query(hn, ids), k_cache, v_cache, start + 1, mask)
    h_out = block.finish(h_BxNxD, out, mod)
  return h_out, (k_cache, v_cache)


def _extend_query(block, h_BxNxD, ids, g_BxMxD, g_ids, kv, start, content_out: bool):
  """N content rows written at [start, start+N), then M query rows against [0, start+N)."""
  if h_BxNxD.shape[1] == 1 and block.attn.decode_impl == "pallas":
    return _extend_query_one(block, h_BxNxD, ids, g_BxMxD, g_ids, kv, start, content_out)
  h_out, kv = _extend(block, h_BxNxD, ids, kv, start, content_out)
  return h_out, _query(block, g_BxMxD, g_ids, kv, start + h_BxNxD.shape[1]), kv


def _extend_query_one(block, h_Bx1xD, ids, g_BxMxD, g_ids, kv, start, content_out: bool):
  """One new content row: it and the query rows see the same prefix [0, start + 1), so a
  single decode-kernel call reads the cache once for all of them, and the output projection
  and MLP run once over the stacked rows (row-wise, so exact)."""
  hn = block.norm1(h_Bx1xD)
  kv = _write(kv, block.attn.key_value(hn, ids), start)
  q = block.attn.query(block.norm1(g_BxMxD), g_ids)
  x = g_BxMxD
  if content_out:
    q = jnp.concatenate([block.attn.query(hn, ids), q], axis=1)
    x = jnp.concatenate([h_Bx1xD, g_BxMxD], axis=1)
  x = block.finish(x, block.attn.attend_cached(q, kv[0], kv[1], start + 1))
  return (x[:, :1], x[:, 1:], kv) if content_out else (None, x, kv)


def _query(block, g_BxNxD, g_ids: RopeIds, kv, length):
  """Query rows against this layer's cache rows [0, length) (scalar or per batch row)."""
  k_cache, v_cache = kv
  qg = block.attn.query(block.norm1(g_BxNxD), g_ids)
  return block.finish(g_BxNxD, block.attn.attend_cached(qg, k_cache, v_cache, length))


def _write(kv, new_kv, start):
  """New keys/values B x N x H x K into the cache (k, v), each B x H x S x K, at row `start`;
  the cache shards like activations."""
  return tuple(
    nn.with_logical_constraint(
      jax.lax.dynamic_update_slice_in_dim(c, x.transpose(0, 2, 1, 3).astype(c.dtype), start, 2),
      ("batch", "act_heads", "length", "kv"),
    )
    for c, x in zip(kv, new_kv)
  )
