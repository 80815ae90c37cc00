"""Generation orders (docs/generation_order.md): sampling, permuting, and per-row position ids.

An order sigma_BxL is a permutation of 0..L-1 per sequence; sigma[b, t] is the position generated
at step t, and y_t = x[sigma_t] are the tokens in generation order. Every any-order variant works
in this permuted layout, so every mask is a plain causal mask over rows.
"""

import jax
import jax.numpy as jnp

ORDER_KINDS = ("random", "l2r", "mixture")
BOS_POS = -1  # position id (and generation step) of the learned BOS row


def identity_orders(batch: int, length: int) -> jax.Array:
  """The left-to-right order for every sequence: int32[batch, length]."""
  return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))


def random_orders(rng: jax.Array, batch: int, length: int) -> jax.Array:
  """Uniform random permutations, one per sequence: int32[batch, length]."""
  return random_orders_per_row(jax.random.split(rng, batch), length)


def random_orders_per_row(keys_B: jax.Array, length: int) -> jax.Array:
  """One uniform random permutation per key (e.g. one key per evaluation window)."""
  return jax.vmap(lambda k: jax.random.permutation(k, length))(keys_B).astype(jnp.int32)


def sample_orders(
  rng: jax.Array, batch: int, length: int, kind: str = "random", l2r_prob: float = 0.0
) -> jax.Array:
  """Orders for a batch.

  kind: 'random' (uniform over S_L), 'l2r' (identity), or 'mixture' (identity with probability
  l2r_prob per sequence, else uniform).
  """
  if kind == "l2r":
    return identity_orders(batch, length)
  if kind == "random":
    return random_orders(rng, batch, length)
  if kind == "mixture":
    if not 0.0 <= l2r_prob <= 1.0:
      raise ValueError(f"order.l2r_prob must be in [0, 1], got {l2r_prob}")
    r_perm, r_mix = jax.random.split(rng)
    use_l2r_B = jax.random.uniform(r_mix, (batch,)) < l2r_prob
    return jnp.where(
      use_l2r_B[:, None], identity_orders(batch, length), random_orders(r_perm, batch, length)
    )
  raise ValueError(f"unknown order kind {kind!r}; expected one of {ORDER_KINDS}")


def permute(x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
  """Original layout -> generation order: y[b, t] = x[b, sigma[b, t]] (works on trailing dims)."""
  idx = sigma_BxL.reshape(sigma_BxL.shape + (1,) * (x_BxL.ndim - 2))
  return jnp.take_along_axis(x_BxL, idx, axis=1)


def inverse(sigma_BxL: jax.Array) -> jax.Array:
  """The rank of each position: inverse(sigma)[b, sigma[b, t]] = t."""
  B, L = sigma_BxL.shape
  steps = jnp.broadcast_to(jnp.arange(L, dtype=sigma_BxL.dtype), (B, L))
  return jnp.zeros_like(sigma_BxL).at[jnp.arange(B)[:, None], sigma_BxL].set(steps)


def unpermute(y_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
  """Generation order -> original layout: x[b, sigma[b, t]] = y[b, t]."""
  return permute(y_BxL, inverse(sigma_BxL))


def shifted_rows(y_BxL: jax.Array, bos) -> jax.Array:
  """Rows BOS, y_0 .. y_{L-2}: the content rows of every causal variant (row t predicts y_t)."""
  B = y_BxL.shape[0]
  bos_Bx1 = jnp.full((B, 1), bos, dtype=y_BxL.dtype)
  return jnp.concatenate([bos_Bx1, y_BxL[:, :-1]], axis=1)


def own_positions(sigma_BxL: jax.Array) -> jax.Array:
  """Position id of the token each content row holds: (-1, sigma_0, .., sigma_{L-2})."""
  return shifted_rows(sigma_BxL, BOS_POS)


def row_steps(batch: int, length: int) -> jax.Array:
  """Generation step of the token each content row holds: (-1, 0, .., L-2)."""
  return identity_orders(batch, length) - 1
