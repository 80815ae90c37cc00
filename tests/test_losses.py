"""Objectives: MDM ELBO weighting by brute force; any-order NLL; a few steps lower every loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aoarm import kernels, losses, orders
from aoarm.models import VARIANTS

from helpers import init, tiny


def _plain(traits):
  """The two Traits fields `losses.compute_loss` takes as plain values."""
  return traits.objective, traits.random_orders


def _mdm_setup(L=3, V=3):
  cfg = tiny("mdm", vocab=V, seq_len=L, d_model=16, num_heads=2)
  model, params, x, _ = init(cfg, batch=1, seed=7, sharpen=2.0)
  return cfg, model, params, x


def _all_masks(L):
  return np.array(list(itertools.product([0, 1], repeat=L)), bool)


def test_mdm_elbo_weighting_equals_any_order_expectation():
  """E_lambda E_mask[ELBO term] (our weighting, integrated exactly) equals the average any-order
  NLL over all L! orders with the same conditionals (docs/objectives.md)."""
  cfg, model, params, x = _mdm_setup()
  L, V = cfg.seq_len, cfg.vocab_size
  masks = _all_masks(L)  # 2^L x L
  z = jnp.where(masks, V, x)
  logits = model.apply({"params": params}, z)  # one forward per mask pattern
  nodes, weights = np.polynomial.legendre.leggauss(16)
  lam_q, w_q = (nodes + 1) / 2, weights / 2
  m = masks.sum(1)
  elbo = 0.0
  for lam, w in zip(lam_q, w_q):
    terms = losses.mdm_elbo_per_seq(
      logits, jnp.broadcast_to(x, z.shape), jnp.asarray(masks), jnp.full((len(masks),), lam)
    )
    prob = lam**m * (1 - lam) ** (L - m)
    elbo += w * float((prob * np.asarray(terms)).sum())
  nll = np.asarray(losses.token_nll(logits, jnp.broadcast_to(x, z.shape)))
  index = {tuple(mk): i for i, mk in enumerate(masks)}
  ao = []
  for sigma in itertools.permutations(range(L)):
    total = 0.0
    for t in range(L):
      mk = np.zeros(L, bool)
      mk[list(sigma[t:])] = True  # y_t and later are masked
      total += nll[index[tuple(mk)], sigma[t]]
    ao.append(total / L)
  np.testing.assert_allclose(elbo, np.mean(ao), rtol=1e-5)


def test_mdm_training_loss_is_unbiased_estimate():
  cfg, model, params, x = _mdm_setup()
  L, V = cfg.seq_len, cfg.vocab_size
  masks = _all_masks(L)
  logits = model.apply({"params": params}, jnp.where(masks, V, x))
  nll = np.asarray(losses.token_nll(logits, jnp.broadcast_to(x, masks.shape)))
  # exact: sum_M B(m, L-m+1) * sum_{i in M} nll_i / L
  from math import factorial

  exact = sum(
    factorial(mk.sum() - 1) * factorial(L - mk.sum()) / factorial(L) * nll[i][mk].sum() / L
    for i, mk in enumerate(masks)
    if mk.any()
  )
  B = 8192
  _, per_seq = losses.compute_loss(
    model.apply, params, jnp.broadcast_to(x, (B, L)), jax.random.key(0), *_plain(model.traits), V
  )
  per_seq = np.asarray(per_seq)
  se = per_seq.std() / np.sqrt(B)
  assert abs(per_seq.mean() - exact) < 4 * se, (per_seq.mean(), exact, se)


def test_stratified_lambdas_one_per_stratum():
  lam = np.asarray(losses.stratified_lambdas(jax.random.key(1), 16))
  assert np.all((lam > 0) & (lam <= 1))
  np.testing.assert_array_equal(np.floor(lam * 16 - 1e-9).astype(int), np.arange(16))


def test_any_order_nll_targets_in_generation_order():
  logits = jax.random.normal(jax.random.key(0), (1, 4, 5))
  x = jnp.array([[4, 1, 3, 0]])
  sigma = jnp.array([[2, 0, 3, 1]])
  nll = np.asarray(losses.any_order_nll(lambda v, a, s: logits, None, x, sigma))
  lp = np.asarray(jax.nn.log_softmax(logits))
  np.testing.assert_allclose(
    nll[0], [-lp[0, t, int(x[0, sigma[0, t]])] for t in range(4)], rtol=1e-6
  )


def test_order_sampling():
  s = np.asarray(orders.sample_orders(jax.random.key(0), 64, 9, "random"))
  assert all(sorted(r) == list(range(9)) for r in s)
  assert len({tuple(r) for r in s}) > 60
  mix = np.asarray(orders.sample_orders(jax.random.key(0), 400, 9, "mixture", l2r_prob=0.5))
  frac = np.mean([list(r) == list(range(9)) for r in mix])
  assert 0.4 < frac < 0.6
  np.testing.assert_array_equal(
    orders.unpermute(orders.permute(jnp.asarray(s), jnp.asarray(s)), jnp.asarray(s)), s
  )
  with pytest.raises(ValueError, match="unknown order kind"):
    orders.sample_orders(jax.random.key(0), 2, 3, "spiral")


@pytest.mark.parametrize("variant", VARIANTS)
def test_few_adam_steps_lower_the_loss(variant):
  cfg = tiny(variant, vocab=7, seq_len=16)
  model, params, _, _ = init(cfg, sharpen=1.0)
  # a learnable sequence: x_p = p mod 7 (any order can exploit position -> token)
  x = jnp.broadcast_to(jnp.arange(16) % 7, (8, 16))
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(params, state, rng):
    loss_fn = lambda p: losses.compute_loss(model.apply, p, x, rng, *_plain(model.traits), 7)[0]  # noqa: E731
    loss, g = jax.value_and_grad(loss_fn)(params)
    upd, state = opt.update(g, state, params)
    return optax.apply_updates(params, upd), state, loss

  def eval_loss(params):  # same rngs before and after: a paired comparison
    return float(
      np.mean(
        [
          losses.compute_loss(model.apply, params, x, r, *_plain(model.traits), 7)[0]
          for r in jax.random.split(jax.random.key(1), 8)
        ]
      )
    )

  before = eval_loss(params)
  for r in jax.random.split(jax.random.key(0), 80):
    params, state, _ = step(params, state, r)
  after = eval_loss(params)
  assert after < 0.7 * before, (variant, before, after)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_fused_token_nll_equals_optax(dtype):
  """The fused cross-entropy (custom backward) gives optax's values and gradients."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  logits = (4 * jax.random.normal(k1, (3, 7, 50))).astype(dtype)
  y = jax.random.randint(k2, (3, 7), 0, 50)
  w = jax.random.uniform(k3, (3, 7))

  def ref(lg):
    return optax.softmax_cross_entropy_with_integer_labels(lg.astype(jnp.float32), y)

  np.testing.assert_allclose(losses.token_nll(logits, y), ref(logits), rtol=1e-6, atol=1e-6)
  g = jax.grad(lambda lg: jnp.sum(w * losses.token_nll(lg, y)))(logits)
  g_ref = jax.grad(lambda lg: jnp.sum(w * ref(lg)))(logits)
  assert g.dtype == dtype
  tol = 1e-6 if dtype == jnp.float32 else 1e-2  # bf16: one rounding of each entry
  np.testing.assert_allclose(np.float32(g), np.float32(g_ref), rtol=tol, atol=tol)


def test_logsumexp_impl_is_checked():
  with pytest.raises(ValueError, match="'cuda'"):
    kernels.resolve("logsumexp", "cuda")
