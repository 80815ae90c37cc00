"""The length-aware Pallas decode kernel (interpret mode off GPU) computes the masked XLA
attention over the cache prefix, per batch row, with padded cache rows never read."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm.models import cached_attention as ca

from helpers import tiny


def test_pallas_equals_masked_xla_per_batch_length():
  B, T, H, K, S = 3, 2, 2, 16, ca.SPLIT * 2
  kq, kk, kv = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(kq, (B, T, H, K))
  k = jax.random.normal(kk, (B, H, S, K))
  v = jax.random.normal(kv, (B, H, S, K))
  length = jnp.array([1, ca.SPLIT + 7, S])  # one row; across a split; the whole cache
  mask = jnp.broadcast_to((jnp.arange(S) < length[:, None])[:, None], (B, T, S))
  want = ca.attend_xla(q, k, v, mask)
  # rows past each length hold garbage that must not matter
  junk = jnp.where(jnp.arange(S)[None, None, :, None] < length[:, None, None, None], 0.0, 1e4)
  got = ca.attend_pallas(q, k + junk, v + junk, length)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)


def test_cache_rows_and_validation():
  assert ca.cache_rows(1025, "pallas") == 1280 and ca.cache_rows(1025, "xla") == 1025
  with pytest.raises(ValueError, match="decode_impl"):
    ca.resolve("flash")
  with pytest.raises(ValueError, match="decode_impl"):
    tiny("two_stream", decode_impl="flash")
  with pytest.raises(ValueError, match="multiple of"):
    ca.attend_pallas(
      jnp.zeros((1, 1, 1, 8)), jnp.zeros((1, 1, 100, 8)), jnp.zeros((1, 1, 100, 8)), 3
    )
