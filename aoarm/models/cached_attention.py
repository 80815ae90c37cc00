"""Attention of a few new rows against a KV cache (cached decoding, SPEC §4).

The cache is laid out B x H x S x K (heads before rows), so q·k and w·v are matmuls batched over
(b, h) with no transpose of the cache. Two implementations (`model.decode_impl`):

- `xla`: an explicit mask B x T x S; every step reads all S cache rows.
- `pallas`: the Triton flash-decoding kernel of `jax.experimental.pallas.ops.gpu.decode_attention`
  (one program per (b, h, split of SPLIT rows); splits past the filled length exit at once), for
  new rows that all see the same cache prefix [0, length). Off GPU it runs in interpret mode
  (tests). The cache must then have a multiple of SPLIT rows (`cache_rows`). `auto` picks it on
  a single GPU only: GSPMD does not partition the Pallas call (it would gather a sharded cache).
"""

import functools

import jax
import jax.numpy as jnp

from aoarm import sharding

DECODE_IMPLS = sharding.KERNEL_IMPLS
SPLIT = 256  # cache rows per kernel program (pallas)
BLOCK_K = 64  # rows per inner iteration of a program


def resolve(impl: str) -> str:
  return sharding.resolve_kernel(impl, "model.decode_impl")


def cache_rows(rows: int, impl: str) -> int:
  """Rows to allocate for `rows` cache entries: the pallas kernel needs a multiple of SPLIT (the
  padding is never attended: it lies past every length)."""
  return -(-rows // SPLIT) * SPLIT if resolve(impl) == "pallas" else rows


def attend_xla(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, mask_BxTxS):
  """softmax(q k^T / sqrt(K)) v over the cache rows the mask allows; float32 softmax."""
  scale = q_BxTxHxK.shape[-1] ** -0.5
  s_BxHxTxS = jnp.einsum(
    "bthk,bhsk->bhts", q_BxTxHxK, k_BxHxSxK, preferred_element_type=jnp.float32
  )
  s_BxHxTxS = jnp.where(mask_BxTxS[:, None], s_BxHxTxS * scale, -jnp.inf)
  w_BxHxTxS = jax.nn.softmax(s_BxHxTxS, axis=-1).astype(v_BxHxSxK.dtype)
  return jnp.einsum("bhts,bhsk->bthk", w_BxHxTxS, v_BxHxSxK)


def attend_pallas(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B):
  """All T rows of batch b attend cache rows [0, length_B[b]); length-aware (splits past the
  length are skipped, the last one is masked)."""
  from jax.experimental.pallas.ops.gpu import decode_attention as da

  B, T, H, K = q_BxTxHxK.shape
  S = k_BxHxSxK.shape[2]
  if S % SPLIT:
    raise ValueError(f"pallas decode attention needs a multiple of {SPLIT} cache rows, got {S}")
  one = functools.partial(
    da.decode_attn_unbatched,
    sm_scale=K**-0.5,
    block_h=16,
    block_k=BLOCK_K,
    k_splits=S // SPLIT,
    num_warps=None,
    num_stages=2,
    grid=None,
    interpret=jax.default_backend() != "gpu",
    debug=False,
    return_residuals=False,
    normalize_output=True,
  )
  per_head = jax.vmap(one, in_axes=(0, 0, 0, None, None))  # over H; the length is shared
  per_batch = jax.vmap(per_head, in_axes=(0, 0, 0, None, 0))
  length_B = jnp.broadcast_to(jnp.asarray(length_B, jnp.int32), (B,))
  out_BxHxTxK = per_batch(q_BxTxHxK.transpose(0, 2, 1, 3), k_BxHxSxK, v_BxHxSxK, None, length_B)
  return out_BxHxTxK.transpose(0, 2, 1, 3)
