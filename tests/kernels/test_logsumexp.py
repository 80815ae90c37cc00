"""The one-read log-sum-exp kernel (`aoarm.kernels.row_logsumexp`, Pallas; interpreted off GPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import kernels, losses
from aoarm.kernels import row_logsumexp as logsumexp


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("blocks", [(1, 64), (4, 32), (8, 128)])
def test_pallas_logsumexp_equals_xla(dtype, blocks):
  """The one-read kernel (interpret mode off GPU): V not a multiple of the column block, large
  spreads (a max pass skipped would overflow), a row of -inf, and one huge outlier per row."""
  R, C = blocks
  x = 40 * jax.random.normal(jax.random.key(0), (16, 201))
  x = x.at[3].set(-jnp.inf).at[:, 200].add(300.0).at[5, 200].set(-jnp.inf).astype(dtype)
  got = logsumexp.logsumexp(x, R, C)
  want = jax.nn.logsumexp(x.astype(jnp.float32), axis=-1)
  assert got.dtype == jnp.float32 and got.shape == (16,)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.isneginf(got[3])


def test_token_nll_same_with_either_logsumexp(monkeypatch):
  """token_nll through the kernel equals token_nll through XLA (values and gradients)."""
  logits = 5 * jax.random.normal(jax.random.key(1), (2, 8, 75))
  y = jax.random.randint(jax.random.key(2), (2, 8), 0, 75)

  def run():
    return jax.value_and_grad(lambda lg: jnp.sum(losses.token_nll(lg, y) ** 2))(logits)

  monkeypatch.setattr(kernels, "resolve", lambda site, impl="auto": "xla")
  v_xla, g_xla = run()
  monkeypatch.setattr(kernels, "resolve", lambda site, impl="auto": "pallas")
  v_pl, g_pl = run()
  np.testing.assert_allclose(v_pl, v_xla, rtol=1e-6)
  np.testing.assert_allclose(g_pl, g_xla, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mesh_shape", [(4, 2, 1), (2, 1, 4)])
@pytest.mark.parametrize("V", [200, 201])
def test_pallas_logsumexp_per_device_under_a_mesh(mesh_shape, V):
  """Under a mesh of 8 devices the kernel runs on each device's rows; with tensor=4 and V=200
  each rank takes a quarter of the vocabulary and the slices are combined (V=201 does not
  divide: whole rows). A row of -inf stays -inf."""
  import ml_collections
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from aoarm.infra import sharding

  d, f, t = mesh_shape
  mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=d, fsdp=f, tensor=t)))
  x = (40 * jax.random.normal(jax.random.key(0), (16, V))).at[3].set(-jnp.inf)
  x = jax.device_put(x, NamedSharding(mesh, P(sharding.BATCH_AXES)))

  def lse(x, impl):
    with sharding.activate(mesh, sharding.rules()):
      if impl == "xla":
        return jax.nn.logsumexp(x, axis=-1)
      return logsumexp.logsumexp(x, 1, 64)

  f = jax.jit(lse, static_argnums=1)
  assert "manual" in f.lower(x, "pallas").as_text()
  got, want = f(x, "pallas"), f(x, "xla")
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.isneginf(got[3])
