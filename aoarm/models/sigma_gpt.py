"""`sigma_gpt`: sigma-GPT's double positional encoding. Rows as in decoupled_rope; input row t is
Emb(token) + P_own(own position) + P_tgt(sigma_t) with learned tables (the BOS row: Emb(BOS) +
P_tgt only). No RoPE. Causal."""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm.models import decoding, layers
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import Rows, check_order, content_rows, full_rows
from aoarm.models.model_config import ModelConfig
from aoarm.models.variant import Traits


class SigmaGPT(nn.Module):
  traits: ClassVar = Traits(objective="any_order", position_tables=True)
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.backbone = Backbone(c, causal=True, use_rope=False)
    t = c.init_trunc
    self.pos_own = layers.position_table(c.seq_len, c.d_model, c.params_dtype, "pos_own", t)
    self.pos_tgt = layers.position_table(c.seq_len, c.d_model, c.params_dtype, "pos_tgt", t)

  def _add_positions(self, h_BxNxD, rows: Rows):
    dt = self.cfg.compute_dtype
    p_own = jnp.where((rows.own >= 0)[..., None], self.pos_own(jnp.maximum(rows.own, 0)), 0.0)
    h = h_BxNxD + p_own.astype(dt) + self.pos_tgt(rows.tgt).astype(dt)
    zeros = jnp.zeros_like(rows.own)
    return h, RopeIds(q_pos=zeros, k_pos=zeros)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    if x_BxL.shape[1] > self.cfg.seq_len:
      raise ValueError(
        f"sigma_gpt tables hold {self.cfg.seq_len} positions, got L={x_BxL.shape[1]}"
      )
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    return self.backbone(*self._add_positions(h_BxLxD, full_rows(sigma_BxL)))

  def decode(self, prev_BxN, rows: Rows, cache, start):
    """Cached: content rows holding prev tokens (BOS = vocab_size) -> (logits, cache)."""
    h, ids = self._add_positions(self.backbone.embed(prev_BxN), rows)
    return decoding.extend(self.backbone, h, ids, cache, start)
