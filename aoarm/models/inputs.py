"""Content rows shared by every causal variant: BOS, Emb(y_0) .. Emb(y_{L-2})
(docs/generation_order.md).

A content row is described by (token it holds, own position, target position, generation step):
row t holds y_{t-1} (BOS for t = 0) at position sigma_{t-1} (-1), targets sigma_t, and was
generated at step t-1 (-1). The full forward and the cached decoder build rows from the same
description, so they compute the same function.

Token embeddings of the full forward are taken in the *original* layout and passed through
`perturb('tokens')`, so a test can take the gradient of any loss term with respect to the
embedding of any position.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import orders


class Rows(NamedTuple):
  """Position ids of content rows, each B x N: own position, target position, step."""

  own: jax.Array
  tgt: jax.Array
  step: jax.Array


def full_rows(sigma_BxL: jax.Array) -> Rows:
  B, L = sigma_BxL.shape
  return Rows(orders.own_positions(sigma_BxL), sigma_BxL, orders.row_steps(B, L))


def content_rows(module: nn.Module, backbone, x_BxL: jax.Array, sigma_BxL: jax.Array):
  """Embedded content rows in generation order: B x L x D."""
  emb_BxLxD = module.perturb("tokens", backbone.embed(x_BxL))
  y_emb_BxLxD = orders.permute(emb_BxLxD, sigma_BxL)
  B = x_BxL.shape[0]
  bos_Bx1xD = backbone.embed(jnp.full((B, 1), backbone.special_id, jnp.int32))
  return jnp.concatenate([bos_Bx1xD, y_emb_BxLxD[:, :-1]], axis=1)


def check_order(x_BxL: jax.Array, sigma_BxL: jax.Array):
  if sigma_BxL.shape != x_BxL.shape:
    raise ValueError(f"order shape {sigma_BxL.shape} != token shape {x_BxL.shape}")
