"""`decoupled_rope`: the paper's single-stream probe. Rows BOS, Emb(y_0) .. Emb(y_{L-2}); row t
predicts y_t. Keys rotated by the row's own position (BOS -1, row t: sigma_{t-1}); queries by the
target position sigma_t. Causal. The target's content never enters, only its position.

Beyond the paper: `target_heads` < 1 lets the remaining heads' queries use their own position;
`order_dims` > 0 rotates that fraction of each head's dims by generation step (queries and keys
alike), so heads can attend by recency in generation order.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import orders
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import check_order, content_rows
from aoarm.models.model_config import ModelConfig


def num_target_heads(cfg: ModelConfig) -> int:
  return int(round(cfg.target_heads * cfg.num_heads))


def decoupled_ids(cfg: ModelConfig, sigma_BxL: jax.Array) -> RopeIds:
  """Query positions B x L x H (target for the first target-heads, own for the rest)."""
  B, L = sigma_BxL.shape
  own_BxL = orders.own_positions(sigma_BxL)
  n_tgt = num_target_heads(cfg)
  is_tgt_H = jnp.arange(cfg.num_heads) < n_tgt
  q_pos_BxLxH = jnp.where(is_tgt_H, sigma_BxL[..., None], own_BxL[..., None])
  steps_BxL = orders.row_steps(B, L)
  return RopeIds(q_pos=q_pos_BxLxH, k_pos=own_BxL, q_step=steps_BxL, k_step=steps_BxL)


class DecoupledRope(nn.Module):
  cfg: ModelConfig

  def setup(self):
    self.backbone = Backbone(self.cfg, causal=True)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    return self.backbone(h_BxLxD, decoupled_ids(self.cfg, sigma_BxL))
