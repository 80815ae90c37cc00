"""Cached-decoding attention as flash decoding: the Triton kernel of
`jax.experimental.pallas.ops.gpu.decode_attention`.

One program per (batch row, head, split of SPLIT cache rows); splits past the filled length exit
at once, the last one is masked, so a step costs what the filled prefix costs rather than the
whole cache. All new rows of batch row b see the same prefix [0, length_B[b]). The cache must
have a multiple of SPLIT rows (`aoarm.kernels.cache_rows`). The XLA definition, with an explicit
mask, is `models.cached_attention.attend_xla`.
"""

import functools

import jax
import jax.numpy as jnp

SPLIT = 256  # cache rows per kernel program
BLOCK_K = 64  # rows per inner iteration of a program


def attend(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B):
  """softmax(q k^T / sqrt(K)) v of all T rows of batch b over cache rows [0, length_B[b])."""
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
  # the default int (int64 under jax_enable_x64): the kernel's own index math uses it
  int_t = jax.dtypes.canonicalize_dtype(jnp.int64)
  length_B = jnp.broadcast_to(jnp.asarray(length_B, int_t), (B,))
  out_BxHxTxK = per_batch(q_BxTxHxK.transpose(0, 2, 1, 3), k_BxHxSxK, v_BxHxSxK, None, length_B)
  return out_BxHxTxK.transpose(0, 2, 1, 3)
