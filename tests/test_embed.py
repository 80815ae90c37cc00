"""The one-hot token lookup equals the gather bit for bit (bf16 too), and its gradient equals
the gather's scatter-add."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import init, tiny


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_onehot_lookup_equals_gather(dtype):
  cfg_g = tiny("mdm", vocab=27, dtype=dtype, embed="gather")
  cfg_o = tiny("mdm", vocab=27, dtype=dtype, embed="onehot")
  assert cfg_o.onehot_embed and not cfg_g.onehot_embed
  model_g, params, x, _ = init(cfg_g, batch=3)
  model_o = type(model_g)(cfg_o)
  x = x.at[0, :3].set(27)  # MASK rows, the repeated-row case that made the scatter slow

  def emb(model, p):
    return model.apply({"params": p}, x, method=lambda m, t: m.backbone.embed(t))

  np.testing.assert_array_equal(np.asarray(emb(model_g, params)), np.asarray(emb(model_o, params)))

  def loss(model, p):
    return jnp.sum(model.apply({"params": p}, x).astype(jnp.float32) ** 2)

  g_g = jax.grad(lambda p: loss(model_g, p))(params)
  g_o = jax.grad(lambda p: loss(model_o, p))(params)
  # bf16: the scatter-add accumulates in bf16, the one-hot matmul in fp32, so compare norms
  tol = 1e-5 if dtype == "float32" else 1e-2
  for a, b in zip(jax.tree.leaves(g_g), jax.tree.leaves(g_o)):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) <= tol * np.linalg.norm(a)


def test_auto_picks_onehot_only_for_small_tables():
  assert tiny("ar", vocab=27).onehot_embed
  assert not tiny("ar", vocab=50304).onehot_embed
  with pytest.raises(ValueError, match="embed"):
    tiny("ar", embed="table")
