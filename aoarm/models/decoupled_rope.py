"""`decoupled_rope`: the paper's single-stream probe. Rows BOS, Emb(y_0) .. Emb(y_{L-2}); row t
predicts y_t. Keys rotated by the row's own position (BOS -1, row t: sigma_{t-1}); queries by the
target position sigma_t. Causal. The target's content never enters, only its position.

Beyond the paper: `target_heads` < 1 lets the remaining heads' queries use their own position;
`order_dims` > 0 rotates that fraction of each head's dims by generation step (queries and keys
alike), so heads can attend by recency in generation order.
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm.models import decoding
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import Rows, check_order, content_rows, full_rows
from aoarm.models.model_config import ModelConfig
from aoarm.models.variant import Traits


def num_target_heads(cfg: ModelConfig) -> int:
  return int(round(cfg.target_heads * cfg.num_heads))


def decoupled_ids(cfg: ModelConfig, rows: Rows) -> RopeIds:
  """Query positions B x N x H (target for the first target-heads, own for the rest); B x N
  where every head queries by target (the default), which the same rotation broadcasts over
  heads and the q/k/v kernel (`model.qkv_impl`) takes."""
  n_tgt = num_target_heads(cfg)
  if n_tgt == cfg.num_heads:
    q_pos = rows.tgt
  else:
    is_tgt_H = jnp.arange(cfg.num_heads) < n_tgt
    q_pos = jnp.where(is_tgt_H, rows.tgt[..., None], rows.own[..., None])
  return RopeIds(q_pos=q_pos, k_pos=rows.own, q_step=rows.step, k_step=rows.step)


class DecoupledRope(nn.Module):
  traits: ClassVar = Traits(objective="any_order", rope_options=True)
  cfg: ModelConfig

  def setup(self):
    self.backbone = Backbone(self.cfg, causal=True)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    return self.backbone(h_BxLxD, decoupled_ids(self.cfg, full_rows(sigma_BxL)))

  def decode(self, prev_BxN, rows: Rows, cache, start):
    """Cached: content rows holding prev tokens (BOS = vocab_size) -> (logits, cache)."""
    h = self.backbone.embed(prev_BxN)
    return decoding.extend(self.backbone, h, decoupled_ids(self.cfg, rows), cache, start)
