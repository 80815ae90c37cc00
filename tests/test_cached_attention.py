"""Cached decoding's attention: the cache's row padding and the choice of path (the Pallas
kernel's numerics are in tests/kernels/test_decode_attention.py)."""

import jax.numpy as jnp
import pytest

from aoarm.models import cached_attention as ca

from helpers import tiny


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
