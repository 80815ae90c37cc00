"""The length-aware Pallas decode kernel (interpret mode off GPU) computes the masked XLA
attention over the cache prefix, per batch row, with padded cache rows never read."""

import jax
import jax.numpy as jnp
import numpy as np

from aoarm.kernels import flash_decoding as da
from aoarm.models import cached_attention as ca


def test_pallas_equals_masked_xla_per_batch_length():
  B, T, H, K, S = 3, 2, 2, 16, da.SPLIT * 2
  kq, kk, kv = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(kq, (B, T, H, K))
  k = jax.random.normal(kk, (B, H, S, K))
  v = jax.random.normal(kv, (B, H, S, K))
  length = jnp.array([1, da.SPLIT + 7, S])  # one row; across a split; the whole cache
  mask = jnp.broadcast_to((jnp.arange(S) < length[:, None])[:, None], (B, T, S))
  want = ca.attend_xla(q, k, v, mask)
  # rows past each length hold garbage that must not matter
  junk = jnp.where(jnp.arange(S)[None, None, :, None] < length[:, None, None, None], 0.0, 1e4)
  got = da.attend(q, k + junk, v + junk, length)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)
