"""The q/k/v projection with RoPE in the matmul's epilogue (`aoarm.kernels.qkv_rope`), run in Mosaic
GPU's interpret mode on CPU: q, k (rotated) and v against XLA's projection and `apply_rope`, the
gradients against autodiff of that, the whole model with `qkv=pallas` against `xla`, and
the choice of path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import kernels
from aoarm.kernels import hopper_matmul
from aoarm.kernels import qkv_rope as qr
from aoarm.rope import apply_rope

from helpers import assert_kernel_matches_xla, init, tiny

B, L, D, H, K = 2, 64, 128, 6, 64
SMALL = hopper_matmul.Tiling(tile_m=64, tile_n=192)  # 2 x 6 tiles over 2 CTAs, 3 heads each


def _f32(a):
  return np.asarray(a, np.float32)


def _case():
  ks = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(ks[0], (B, L, D), jnp.bfloat16)
  w = (0.1 * jax.random.normal(ks[1], (D, 3 * H * K))).astype(jnp.bfloat16)
  q_pos = jax.vmap(lambda k: jax.random.permutation(k, L))(jax.random.split(ks[2], B))
  k_pos = jax.random.randint(ks[3], (B, L), 0, 1000)  # large angles too
  return x, w, q_pos, k_pos


def _reference(x, w, q_pos, k_pos):
  y = jnp.einsum("bld,dn->bln", x, w).reshape(B, L, 3, H, K)
  return apply_rope(y[:, :, 0], q_pos), apply_rope(y[:, :, 1], k_pos), y[:, :, 2]


def test_kernel_equals_projection_then_rope():
  """q and k rotated by different position ids (so a table mix-up shows), v plain: each within
  one bf16 rounding of XLA's projection + apply_rope, on every tile and head."""
  x, w, q_pos, k_pos = _case()
  got = qr.project(x, w, q_pos, k_pos, K, 10_000.0, SMALL)
  for g, r in zip(got, _reference(x, w, q_pos, k_pos)):
    assert g.shape == (B, L, H, K)
    np.testing.assert_allclose(_f32(g), _f32(r), rtol=8e-3, atol=8e-3)
    assert np.mean(_f32(g) != _f32(r)) < 1e-3  # all but a few elements bit-equal


def test_gradients_equal_autodiff_of_xla():
  x, w, q_pos, k_pos = _case()
  r = jax.random.normal(jax.random.key(5), (3, B, L, H, K))

  def loss(f):
    return lambda x, w: sum(jnp.sum(ri * o.astype(jnp.float32)) for ri, o in zip(r, f(x, w)))

  got = jax.grad(loss(lambda x, w: qr.project(x, w, q_pos, k_pos, K, 10_000.0, SMALL)), (0, 1))
  want = jax.grad(loss(lambda x, w: _reference(x, w, q_pos, k_pos)), (0, 1))
  for a, b in zip(got(x, w), want(x, w)):
    np.testing.assert_allclose(_f32(a), _f32(b), atol=1e-2 * float(jnp.abs(_f32(b)).max()))


@pytest.mark.parametrize("variant", ["ar", "two_stream", "sigma_gpt"])
def test_model_with_qkv_kernel_equals_xla(variant):
  """Whole bf16 model (3 heads of 64), loss and every parameter's gradient, qkv=pallas
  against xla; two_stream's content stream takes the kernel, its query stream XLA's path;
  sigma_gpt has no RoPE (the kernel rotates by angle 0)."""
  assert_kernel_matches_xla(variant, "qkv", seq_len=64, d_model=192, num_heads=3)


def test_qkv_impl_choice():
  """auto is XLA off GPU; pallas is refused, naming why: float32, a head width that does not
  divide the tile, rotary ids per head (Decoupled RoPE); a bad name by the config."""
  assert kernels.resolve("qkv", "auto") == "xla"
  with pytest.raises(ValueError, match="qkv"):
    tiny("ar", qkv="fast")
  x = jnp.zeros((2, 64, 192), jnp.bfloat16)
  assert kernels.use_qkv("pallas", x, 192, 64, None)
  with pytest.raises(ValueError, match="float32"):
    kernels.use_qkv("pallas", x.astype(jnp.float32), 192, 64, None)
  with pytest.raises(ValueError, match="head_dim=48"):
    kernels.use_qkv("pallas", x, 192, 48, None)
  with pytest.raises(ValueError, match="per head"):
    kernels.use_qkv("pallas", x, 192, 64, "rotary ids per head")
  import unittest.mock

  with unittest.mock.patch.object(kernels, "resolve", lambda site, impl: "pallas"):
    assert not kernels.use_qkv("auto", x, 192, 64, "rotary ids per head")  # falls back, no error
    assert not kernels.use_qkv("auto", x, 192, 64, None)  # 128 rows: below AUTO_MIN_ROWS
  kw = dict(seq_len=64, d_model=192, num_heads=3, dtype="bfloat16")
  with pytest.raises(ValueError, match="per head"):  # Decoupled RoPE's target heads
    init(tiny("decoupled_rope", target_heads=0.5, qkv="pallas", **kw))
