"""The RMSNorm kernels (`aoarm.kernels.rmsnorm`, Pallas; interpreted off GPU) against XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm.kernels import rmsnorm
from aoarm.models import layers


def _norm(x, scale, eps, dtype, impl, keep=False, add=None, blocks=None):
  """The kernels ('pallas') or the model's XLA path ('xla'), as `layers.RMSNorm` calls them."""
  if impl == "pallas":
    return rmsnorm.norm(x, scale, eps, dtype, keep, add, blocks)
  x = x if add is None else x + add.astype(x.dtype)
  y = layers.rms_norm(x, scale, eps, dtype)
  return (x, y) if keep else y


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("blocks", [None, (16, 4, 4), (4, 1, 4)])
def test_rmsnorm_kernels_equal_xla(dtype, keep, add, blocks):
  """The fused forward and backward (interpret mode off GPU), D not a power of two: the same
  norm, d x (with the kept x's own cotangent added), d add and d scale as autodiff of the
  reference."""
  x = (3 * jax.random.normal(jax.random.key(0), (2, 32, 96))).astype(dtype)
  x = x.at[0, 3].set(0.0)  # a zero row: eps keeps it finite
  a = jax.random.normal(jax.random.key(3), x.shape).astype(dtype).at[0, 3].set(0.0)
  scale = 1 + 0.1 * jax.random.normal(jax.random.key(1), (96,))
  w, w2 = jax.random.normal(jax.random.key(2), (2, 2, 32, 96))

  def loss(x, a, scale, impl):
    out = _norm(x, scale, 1e-6, dtype, impl, keep, a if add else None, blocks)
    x_kept, y = out if keep else (None, out)
    total = jnp.sum(w * y.astype(jnp.float32))
    if keep:  # the residual branch: its cotangent joins the norm's in one backward call
      total += jnp.sum(w2 * jnp.sin(x_kept.astype(jnp.float32)))
    return total

  (v_ref, g_ref), (v, g) = (
    jax.value_and_grad(loss, (0, 1, 2))(x, a, scale, impl) for impl in ("xla", "pallas")
  )
  np.testing.assert_allclose(v, v_ref, rtol=1e-6)
  assert g[0].dtype == dtype and g[2].dtype == jnp.float32
  if not add:
    assert not np.any(g[1]) and not np.any(g_ref[1])
  tol = 1e-5 if dtype == jnp.float32 else 1e-2  # bf16: one rounding of d x either way
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("variant", ["ar", "two_stream"])
def test_model_with_rmsnorm_kernels_equals_xla(variant):
  """Whole model, loss and every parameter's gradient, norm=pallas vs xla (two_stream:
  both streams share the norms and keep their residuals)."""
  from aoarm import losses

  from helpers import init, tiny

  out = {}
  for impl in ("xla", "pallas"):
    cfg = tiny(variant, norm=impl)
    model, params, x, sigma = init(cfg, batch=2)

    def f(p, model=model, x=x, sigma=sigma):
      return losses.any_order_nll(model.apply, p, x, sigma).mean()

    out[impl] = jax.value_and_grad(f)(params)
  np.testing.assert_allclose(out["pallas"][0], out["xla"][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(out["pallas"][1]), jax.tree.leaves(out["xla"][1])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_rmsnorm_kept_x_gradient_joins_the_kernel():
  """keep=True: the kept x's cotangent enters the backward kernel; no B x L x D add outside."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 96))
  scale = jnp.ones(96)

  def loss(x):
    x_kept, y = rmsnorm.norm(x, scale, 1e-6, jnp.float32, keep=True)
    return jnp.sum(jnp.sin(x_kept) * y)

  eqns = jax.make_jaxpr(jax.grad(loss))(x).eqns
  full_adds = [
    e for e in eqns if e.primitive.name in ("add", "add_any") and e.outvars[0].aval.shape == x.shape
  ]
  assert not full_adds, full_adds


@pytest.mark.parametrize("mesh_shape", [(4, 2, 1), (2, 1, 4)])
def test_rmsnorm_kernels_per_device_under_a_mesh(mesh_shape):
  """Under a mesh of 8 devices the kernels run on each device's rows (shard_map); values and
  gradients (d scale summed over the devices) equal the XLA path's."""
  import ml_collections
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from aoarm.infra import sharding

  d, f, t = mesh_shape
  mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=d, fsdp=f, tensor=t)))
  x, a, w = jax.random.normal(jax.random.key(0), (3, 8, 16, 96))
  scale = 1 + 0.1 * jax.random.normal(jax.random.key(2), (96,))
  x = jax.device_put(x, NamedSharding(mesh, P(sharding.BATCH_AXES)))

  def loss(x, a, scale, impl):
    with sharding.activate(mesh, sharding.rules()):
      kept, y = _norm(x, scale, 1e-6, jnp.float32, impl, keep=True, add=a)
    return jnp.sum(w * y) + jnp.sum(jnp.sin(kept) * w)

  grad = jax.jit(jax.value_and_grad(loss, (0, 1, 2)), static_argnums=3)
  assert "manual" in grad.lower(x, a, scale, "pallas").as_text()  # split per device
  (v_ref, g_ref), (v, g) = (grad(x, a, scale, impl) for impl in ("xla", "pallas"))
  np.testing.assert_allclose(v, v_ref, rtol=1e-6)
  for u, r in zip(g, g_ref):
    np.testing.assert_allclose(u, r, rtol=1e-5, atol=1e-5)
