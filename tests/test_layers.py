"""Building blocks with hand-written backwards or fused projections."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import kernels
from aoarm.models import layers


def _gelu_derivative_f64(x):
  """d/dx of x/2 (1 + tanh(c (x + 0.044715 x^3))), by hand in float64."""
  c = np.sqrt(2 / np.pi)
  t = np.tanh(c * (x + 0.044715 * x**3))
  return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


def test_gelu_custom_backward_matches_autodiff():
  """Same values as nn.gelu; the float32 derivative equals autodiff's; in bf16 it is at least
  as close to the float64 derivative as autodiff's bf16 one."""
  x = 4 * jax.random.normal(jax.random.key(0), (4096,))
  np.testing.assert_array_equal(layers.gelu(x), nn.gelu(x))
  g = jax.vmap(jax.grad(layers.gelu))(x)
  np.testing.assert_allclose(g, jax.vmap(jax.grad(nn.gelu))(x), rtol=1e-5, atol=1e-6)
  xb = x.astype(jnp.bfloat16)
  exact = _gelu_derivative_f64(np.float64(xb))
  ours = np.float64(jax.vmap(jax.grad(layers.gelu))(xb))
  auto = np.float64(jax.vmap(jax.grad(nn.gelu))(xb))
  assert np.abs(ours - exact).max() <= np.abs(auto - exact).max()
  assert np.abs(ours - exact).max() < 1e-2


def test_rmsnorm_impl_is_checked():
  with pytest.raises(ValueError, match="'triton'"):
    kernels.resolve("norm", "triton")
  with pytest.raises(ValueError, match="norm"):
    from helpers import tiny

    tiny("ar", norm="fast")
