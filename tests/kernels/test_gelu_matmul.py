"""The MLP's matmul kernels with the GELU in their epilogues (`aoarm.kernels.gelu_mlp`), run in
Mosaic GPU's interpret mode on CPU: the kernels against the reference, the MLP's gradients against
XLA's, the whole model with `mlp=pallas` against `xla`, and the choice of path."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import kernels
from aoarm.kernels import gelu_mlp as gm
from aoarm.models import layers

from helpers import assert_kernel_matches_xla, init, tiny

SMALL = gm.Tiling(tile_m=64, tile_n=64, tile_k=64, stages=2, epi_m=64, epi_n=32)


def _f32(a):
  return np.asarray(a, np.float32)


def _operands(m=128, k=128, n=256, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.normal(ks[0], (m, k), jnp.bfloat16)
  w = (0.1 * jax.random.normal(ks[1], (k, n))).astype(jnp.bfloat16)
  g = jax.random.normal(ks[2], (m, k), jnp.bfloat16)
  return x, w, g


def test_gelu_forms_equal_the_definition():
  """The epilogues' two ways to write GELU and its derivative (exp and divide; tanh) equal
  nn.gelu and layers.gelu_derivative in float32, far into both tails."""
  x = jnp.linspace(-30.0, 30.0, 20001)
  for f in (gm.gelu_f32, gm.gelu_tanh):
    np.testing.assert_allclose(f(x), nn.gelu(x), atol=2e-6)
  for f in (gm.dgelu_f32, gm.gelu_derivative):
    np.testing.assert_allclose(f(x), layers.gelu_derivative(x), atol=2e-5)
    assert np.isfinite(np.asarray(f(x))).all()


@pytest.mark.parametrize(
  "tiling",
  [
    SMALL,  # 8 output tiles over 2 CTAs: each consumer warpgroup takes two, the ring wraps
    gm.Tiling(
      tile_m=64, tile_n=64, tile_k=64, stages=3, epi_m=64, epi_n=64, slots=1, release=False
    ),
    gm.Tiling(tile_m=64, tile_n=128, tile_k=32, stages=2, epi_m=32, epi_n=64, approx=False),
  ],
  ids=["ping-pong", "release-at-once", "exp-form"],
)
def test_kernels_equal_reference(tiling):
  """pre = x @ w, act = gelu(pre) and (g @ w) * gelu'(pre): each within one bf16 rounding of
  the float32 reference, over every output tile (a wrong tile offset moves whole blocks)."""
  x, w, g = _operands()
  pre, act = gm.matmul_gelu(x, w, tiling)
  ref = jnp.dot(x, w, preferred_element_type=jnp.float32)
  np.testing.assert_allclose(_f32(pre), ref, rtol=8e-3, atol=1e-3)
  np.testing.assert_allclose(_f32(act), nn.gelu(_f32(pre)), rtol=8e-3, atol=1e-3)
  d = gm.matmul_dgelu(g, w, pre, tiling)
  d_ref = jnp.dot(g, w, preferred_element_type=jnp.float32) * layers.gelu_derivative(_f32(pre))
  np.testing.assert_allclose(_f32(d), d_ref, rtol=8e-3, atol=2e-3)


def test_kernels_reject_bad_shapes():
  x, w, g = _operands(m=96)
  with pytest.raises(ValueError, match="m=96"):
    gm.matmul_gelu(x, w, SMALL)
  x, w, g = _operands()
  with pytest.raises(ValueError, match="epilogue operand"):
    gm.matmul_dgelu(g, w, jnp.zeros((128, 128), jnp.bfloat16), SMALL)


def test_mlp_gradients_equal_xla():
  """gelu(x @ w_in) @ w_out through the kernels: value and the three gradients as close to the
  float32 reference as XLA's bf16 path is (each within a few bf16 roundings)."""
  ks = jax.random.split(jax.random.key(1), 4)
  x = jax.random.normal(ks[0], (2, 64, 64), jnp.bfloat16)
  w_in = (0.2 * jax.random.normal(ks[1], (64, 256))).astype(jnp.bfloat16)
  w_out = (0.1 * jax.random.normal(ks[2], (256, 64))).astype(jnp.bfloat16)
  r = jax.random.normal(ks[3], (2, 64, 64))

  def xla(x, a, b):
    return layers._dot(layers.gelu(layers._dot(x, a)), b)

  def loss(f, dtype):
    return lambda *p: jnp.sum(r * f(*(q.astype(dtype) for q in p)).astype(jnp.float32))

  exact = jax.value_and_grad(loss(xla, jnp.float32), (0, 1, 2))(x, w_in, w_out)
  for f in (xla, gm.mlp):
    v, grads = jax.value_and_grad(loss(f, jnp.bfloat16), (0, 1, 2))(x, w_in, w_out)
    np.testing.assert_allclose(v, exact[0], rtol=2e-2)
    for a, b in zip(grads, exact[1]):
      assert a.dtype == jnp.bfloat16
      np.testing.assert_allclose(_f32(a), b, atol=2e-2 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("variant", ["ar", "two_stream"])
def test_model_with_mlp_kernels_equals_xla(variant):
  """Whole model in bf16, loss and every parameter's gradient, mlp=pallas vs xla (the
  parameter tree is the same; two_stream runs both streams through the kernels)."""
  assert_kernel_matches_xla(variant, "mlp", seq_len=64, d_model=64)


def test_mlp_impl_choice():
  """auto is XLA off GPU; pallas is refused, naming why, for float32 and for a width that does
  not tile; a bad name is refused by the config."""
  assert kernels.resolve("mlp", "auto") == "xla"
  with pytest.raises(ValueError, match="'cuda'"):
    kernels.resolve("mlp", "cuda")
  with pytest.raises(ValueError, match="mlp"):
    tiny("ar", mlp="fast")
  x32 = jnp.zeros((2, 64, 64), jnp.float32)
  assert not kernels.use_mlp("auto", x32, 256)
  with pytest.raises(ValueError, match="float32"):
    kernels.use_mlp("pallas", x32, 256)
  with pytest.raises(ValueError, match="mlp_dim=320 is not a multiple of 128"):
    kernels.use_mlp("pallas", x32.astype(jnp.bfloat16), 320)
  assert gm.tilings(384)[0].tile_n == 192 and gm.tilings(256)[0].tile_n == 128
  assert kernels.use_mlp("pallas", x32.astype(jnp.bfloat16), 256)
  # auto: small calls (cached decoding) keep XLA. Off GPU auto is XLA anyway, so pretend.
  import unittest.mock

  with unittest.mock.patch.object(kernels, "resolve", lambda site, impl: "pallas"):
    assert not kernels.use_mlp("auto", x32.astype(jnp.bfloat16), 256)
    assert kernels.use_mlp("auto", jnp.zeros((64, 64, 64), jnp.bfloat16), 256)


def test_model_auto_falls_back_where_the_kernels_do_not_fit():
  """The model hands `auto` itself to the MLP, so that a shape or dtype the kernels cannot take
  (float32; cached decoding's few rows) runs XLA's path rather than raising. Off GPU auto is
  XLA anyway, so the GPU's choice is pretended."""
  import unittest.mock

  gpu_like = lambda site, impl="auto": "xla" if impl == "xla" or site != "mlp" else "pallas"  # noqa: E731
  with unittest.mock.patch.object(kernels, "resolve", gpu_like):
    for kw in (dict(), dict(seq_len=64, d_model=64, dtype="bfloat16")):
      model, params, x, sigma = init(tiny("ar", mlp="auto", **kw), batch=2)
      assert np.isfinite(np.asarray(model.apply({"params": params}, x, sigma))).all()
