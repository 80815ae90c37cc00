"""`sigma_gpt`: sigma-GPT's double positional encoding. Rows as in decoupled_rope; input row t is
Emb(token) + P_own(own position) + P_tgt(sigma_t) with learned tables (the BOS row: Emb(BOS) +
P_tgt only). No RoPE. Causal."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import orders
from aoarm.models import layers
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import check_order, content_rows
from aoarm.models.model_config import ModelConfig


class SigmaGPT(nn.Module):
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.backbone = Backbone(c, causal=True, use_rope=False)
    self.pos_own = layers.position_table(c.seq_len, c.d_model, c.params_dtype, "pos_own")
    self.pos_tgt = layers.position_table(c.seq_len, c.d_model, c.params_dtype, "pos_tgt")

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    if x_BxL.shape[1] > self.cfg.seq_len:
      raise ValueError(
        f"sigma_gpt tables hold {self.cfg.seq_len} positions, got L={x_BxL.shape[1]}"
      )
    dt = self.cfg.compute_dtype
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    own_BxL = orders.own_positions(sigma_BxL)
    p_own_BxLxD = jnp.where((own_BxL >= 0)[..., None], self.pos_own(jnp.maximum(own_BxL, 0)), 0.0)
    h_BxLxD = h_BxLxD + p_own_BxLxD.astype(dt) + self.pos_tgt(sigma_BxL).astype(dt)
    zeros_BxL = jnp.zeros_like(sigma_BxL)
    return self.backbone(h_BxLxD, RopeIds(q_pos=zeros_BxL, k_pos=zeros_BxL))
