"""Leakage: the loss at step t has exactly zero gradient w.r.t. y_t and every later token."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import losses, orders

from helpers import CAUSAL_CASES, case_id, init, tiny


def per_step_nll_fn(model, params, x_BxL, sigma_BxL):
  """f(perturbation of token embeddings, original layout) -> per-step NLL (B x L)."""
  y_BxL = orders.permute(x_BxL, sigma_BxL)

  def f(delta_BxLxD):
    logits = model.apply(
      {"params": params, "perturbations": {"tokens": delta_BxLxD}}, x_BxL, sigma_BxL
    )
    return losses.token_nll(logits, y_BxL)

  return f


@pytest.mark.parametrize("order", ["random", "l2r"])
@pytest.mark.parametrize("case", CAUSAL_CASES, ids=case_id)
def test_step_loss_blind_to_target_and_later(case, order):
  variant, kw = case
  cfg = tiny(variant, **kw)
  model, params, x, sigma = init(cfg, batch=2)
  if order == "l2r" or variant == "ar":
    sigma = orders.identity_orders(*x.shape)
  B, L = x.shape
  delta = jnp.zeros((B, L, cfg.d_model))
  # jac[b, t, b', p, :] = d nll[b, t] / d emb[b', p]
  jac = np.asarray(jax.jacrev(per_step_nll_fn(model, params, x, sigma))(delta))
  rank = np.asarray(orders.inverse(sigma))
  assert np.isfinite(jac).all()
  for b in range(B):
    for t in range(L):
      g_pos = np.abs(jac[b, t, b]).sum(-1)  # per position p
      unseen = rank[b] >= t  # y_t and everything later in the order
      assert np.all(g_pos[unseen] == 0.0), (variant, b, t, g_pos[unseen])
      if t > 0:
        assert g_pos[~unseen].max() > 0, (variant, b, t, "no gradient from earlier tokens")
      other = 1 - b  # and nothing crosses between sequences of the batch
      assert np.all(jac[b, t, other] == 0.0)


@pytest.mark.parametrize("case", CAUSAL_CASES, ids=case_id)
def test_loss_finite_on_identity_order(case):
  variant, kw = case
  cfg = tiny(variant, **kw)
  model, params, x, _ = init(cfg, sharpen=1.0)  # the real initialisation
  sigma = orders.identity_orders(*x.shape)
  nll = losses.any_order_nll(model.apply, params, x, sigma)
  assert np.isfinite(np.asarray(nll)).all()
  assert abs(float(nll.mean()) - np.log(cfg.vocab_size)) < 1.0  # near-uniform at init


def test_two_stream_logits_t_ignore_y_t():
  cfg = tiny("two_stream")
  model, params, x, sigma = init(cfg, batch=1)
  logits = model.apply({"params": params}, x, sigma)
  L = x.shape[1]
  for t in range(L):
    pos = int(sigma[0, t])
    x2 = x.at[0, pos].set((x[0, pos] + 1) % cfg.vocab_size)  # change y_t, and only y_t
    logits2 = model.apply({"params": params}, x2, sigma)
    np.testing.assert_array_equal(np.asarray(logits[0, t]), np.asarray(logits2[0, t]))
    if t + 1 < L:  # ... while a later step does see it
      assert not np.allclose(logits[0, t + 1 :], logits2[0, t + 1 :])


def test_mdm_masked_tokens_hidden_and_attention_bidirectional():
  """mdm's loss sees only z: a masked token's value moves no logit, a visible one moves all."""
  from aoarm.losses import mask_tokens

  cfg = tiny("mdm")
  model, params, x, _ = init(cfg, batch=1)
  lam = jnp.array([0.5])
  z, masked = mask_tokens(jax.random.key(3), x, cfg.vocab_size, lam)
  masked = np.asarray(masked)
  assert masked.any() and not masked.all()
  assert np.all(np.asarray(z)[masked] == cfg.vocab_size)
  assert np.all(np.asarray(z)[~masked] == np.asarray(x)[~masked])
  x_changed = jnp.where(masked, (x + 3) % cfg.vocab_size, x)  # change only masked tokens
  z2, masked2 = mask_tokens(jax.random.key(3), x_changed, cfg.vocab_size, lam)
  np.testing.assert_array_equal(np.asarray(masked), np.asarray(masked2))
  logits = np.asarray(model.apply({"params": params}, z))
  np.testing.assert_array_equal(logits, np.asarray(model.apply({"params": params}, z2)))
  j = int(np.flatnonzero(~masked[0])[-1])  # the last visible position ...
  z3 = z.at[0, j].set((z[0, j] + 1) % cfg.vocab_size)
  logits3 = np.asarray(model.apply({"params": params}, z3))
  assert np.all(np.abs(logits3 - logits)[0].sum(-1) > 0)  # ... reaches every row, earlier too
