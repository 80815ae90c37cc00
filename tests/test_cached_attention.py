"""Cached decoding's attention: the cache's row padding and the choice of path (the Pallas
kernel's numerics are in tests/kernels/test_decode_attention.py)."""

import jax.numpy as jnp
import pytest

from aoarm import kernels
from aoarm.kernels import flash_decoding

from helpers import tiny


def test_cache_rows_and_validation():
  assert kernels.cache_rows(1025, "pallas") == 1280 and kernels.cache_rows(1025, "xla") == 1025
  with pytest.raises(ValueError, match="decode"):
    kernels.resolve("decode", "flash")
  with pytest.raises(ValueError, match="decode"):
    tiny("two_stream", decode="flash")
  with pytest.raises(ValueError, match="multiple of"):
    flash_decoding.attend(
      jnp.zeros((1, 1, 1, 8)), jnp.zeros((1, 1, 100, 8)), jnp.zeros((1, 1, 100, 8)), 3
    )
