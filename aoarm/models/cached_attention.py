"""Attention of a few new rows against a KV cache (cached decoding, docs/sampling.md).

The cache is laid out B x H x S x K (heads before rows), so q·k and w·v are matmuls batched over
(b, h) with no transpose of the cache. `attend_xla` is the definition: an explicit mask
B x T x S, every step reading all S cache rows. Where every new row sees the same prefix
[0, length), `model.kernels.decode` may take the flash-decoding kernel instead
(`aoarm.kernels.flash_decoding`), which reads only the filled prefix.
"""

import jax
import jax.numpy as jnp


def attend_xla(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, mask_BxTxS):
  """softmax(q k^T / sqrt(K)) v over the cache rows the mask allows; float32 softmax."""
  scale = q_BxTxHxK.shape[-1] ** -0.5
  s_BxHxTxS = jnp.einsum(
    "bthk,bhsk->bhts", q_BxTxHxK, k_BxHxSxK, preferred_element_type=jnp.float32
  )
  s_BxHxTxS = jnp.where(mask_BxTxS[:, None], s_BxHxTxS * scale, -jnp.inf)
  w_BxHxTxS = jax.nn.softmax(s_BxHxTxS, axis=-1).astype(v_BxHxSxK.dtype)
  return jnp.einsum("bhts,bhsk->bthk", w_BxHxTxS, v_BxHxSxK)


def prefix_mask(B: int, T: int, S: int, length_B) -> jax.Array:
  """B x T x S: every row of batch b sees cache rows [0, length_B[b])."""
  length_B = jnp.broadcast_to(jnp.asarray(length_B), (B,))
  return jnp.broadcast_to((jnp.arange(S) < length_B[:, None])[:, None], (B, T, S))
