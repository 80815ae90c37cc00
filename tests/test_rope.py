"""RoPE: scores depend only on position differences; Decoupled RoPE follows the target."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import orders
from aoarm.models import get_model
from aoarm.rope import apply_rope, order_rotary_dims

import reference
from helpers import init, tiny


def _scores(q, k, qpos, kpos, **kw):
  return jnp.einsum("bthk,bshk->bhts", apply_rope(q, qpos, **kw), apply_rope(k, kpos, **kw))


def test_scores_depend_only_on_position_differences():
  kq, kk, kp = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(kq, (2, 5, 3, 16))
  k = jax.random.normal(kk, (2, 6, 3, 16))
  qpos = jax.random.randint(kp, (2, 5), -1, 200)
  kpos = jax.random.randint(jax.random.key(9), (2, 6), -1, 200)
  s = _scores(q, k, qpos, kpos)
  for shift in (1, 37, 1000):
    np.testing.assert_allclose(_scores(q, k, qpos + shift, kpos + shift), s, atol=1e-3)
  # ... and do depend on them
  assert not np.allclose(_scores(q, k, qpos + 1, kpos), s, atol=1e-2)


def test_rope_matches_complex_reference_and_is_norm_preserving():
  x = jax.random.normal(jax.random.key(1), (1, 4, 2, 8))
  pos = jnp.array([[-1, 0, 5, 77]])
  out = np.asarray(apply_rope(x, pos))
  ref = reference.rope(np.asarray(x[0], np.float64), np.repeat(np.asarray(pos[0])[:, None], 2, 1))
  np.testing.assert_allclose(out[0], ref, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(apply_rope(x, jnp.zeros((1, 4)))), np.asarray(x))


def test_per_head_positions_and_order_dims():
  x = jax.random.normal(jax.random.key(2), (1, 3, 4, 16))
  pos_BxL = jnp.array([[3, 9, 27]])
  per_head = jnp.stack([pos_BxL, pos_BxL + 5, pos_BxL, pos_BxL], axis=-1)
  out = apply_rope(x, per_head)
  np.testing.assert_allclose(out[:, :, 0], apply_rope(x, pos_BxL)[:, :, 0])
  np.testing.assert_allclose(out[:, :, 1], apply_rope(x, pos_BxL + 5)[:, :, 1])
  # order dims: the trailing block follows `step`, the leading block `pos`
  n = order_rotary_dims(16, 0.5)
  assert n == 8
  step = jnp.array([[0, 1, 2]])
  split = apply_rope(x, pos_BxL, step, order_frac=0.5)
  np.testing.assert_allclose(split[..., :8], apply_rope(x[..., :8], pos_BxL), atol=1e-6)
  np.testing.assert_allclose(split[..., 8:], apply_rope(x[..., 8:], step), atol=1e-6)
  with pytest.raises(ValueError, match="order_dims"):
    order_rotary_dims(16, 1.5)


def _layer0_scores(cfg, params, x, sigma):
  cfg = dataclasses.replace(cfg, capture_attention=True)
  _, state = get_model(cfg).apply({"params": params}, x, sigma, mutable=["intermediates"])
  inter = state["intermediates"]["backbone"]["block_0"]["attn"]
  return np.asarray(inter["content_scores"][0])  # B x H x T x S


@pytest.mark.parametrize("target_heads", [1.0, 0.0])
def test_decoupled_queries_follow_target_not_own_position(target_heads):
  """Row t's scores against earlier rows: unchanged when its own position sigma_{t-1} moves, changed
  when its target sigma_t moves (target_heads=1); the reverse for own-position heads."""
  cfg = tiny("decoupled_rope", seq_len=8, target_heads=target_heads)
  _, params, _, _ = init(cfg, batch=1)
  x = jnp.full((1, 8), 3)  # constant tokens: only positions differ between orders
  sigma = jnp.array([[4, 0, 6, 2, 7, 1, 5, 3]])
  t = 4
  swap_own = sigma.at[0, t - 1].set(sigma[0, t + 1]).at[0, t + 1].set(sigma[0, t - 1])
  swap_tgt = sigma.at[0, t].set(sigma[0, t + 1]).at[0, t + 1].set(sigma[0, t])
  base = _layer0_scores(cfg, params, x, sigma)[0, :, t, : t - 1]  # keys j < t-1: none moved
  own = _layer0_scores(cfg, params, x, swap_own)[0, :, t, : t - 1]
  tgt = _layer0_scores(cfg, params, x, swap_tgt)[0, :, t, : t - 1]
  if target_heads == 1.0:
    np.testing.assert_allclose(own, base, atol=1e-5)
    assert not np.allclose(tgt, base, atol=1e-3)
  else:
    np.testing.assert_allclose(tgt, base, atol=1e-5)
    assert not np.allclose(own, base, atol=1e-3)


def test_two_stream_query_rotated_by_target():
  cfg = tiny("two_stream", seq_len=8)
  _, params, _, _ = init(cfg, batch=1)
  x = jnp.full((1, 8), 3)
  sigma = orders.random_orders(jax.random.key(4), 1, 8)
  c = dataclasses.replace(cfg, capture_attention=True)
  _, st = get_model(c).apply({"params": params}, x, sigma, mutable=["intermediates"])
  s = np.asarray(st["intermediates"]["backbone"]["block_0"]["attn"]["query_scores"][0][0])
  # layer 0: every query row is the same vector w and every content key the same token, so the
  # score of query row t against row j depends only on sigma_t - pos_j: rows with equal offsets
  # score equally.
  own = np.asarray(orders.own_positions(sigma))[0]
  tgt = np.asarray(sigma)[0]
  seen = {}
  for t in range(8):
    for j in range(1, t + 1):
      d = int(tgt[t] - own[j])
      if d in seen:
        np.testing.assert_allclose(s[:, t, j], seen[d], atol=1e-4)
      seen[d] = s[:, t, j]
  assert len(seen) > 3
