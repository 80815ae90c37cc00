"""`aogpt`: AO-GPT's single stream (Xue et al., ICML 2026) on aoarm's backbone. Rows as in
decoupled_rope (BOS, Emb(y_0) .. Emb(y_{L-2}); row t predicts y_t), causal, queries and keys
rotated by the row's own position. The target position sigma_t enters only through adaptive
layer norm: a learned 128-d embedding of it, through SiLU, sets each block's shifts, scales and
gates and the final norm's shift and scale (`models.adaptive_norm`). Attention has QK-norm.

Where AO-GPT differs and aoarm keeps its backbone: own positions by RoPE rather than a learned
table added to the input, no biases outside the adaptive norm, aoarm's initialisation.
"""

from typing import ClassVar

import flax.linen as nn
import jax

from aoarm.models import decoding, layers
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import Rows, check_order, content_rows, full_rows
from aoarm.models.model_config import ModelConfig
from aoarm.models.variant import Traits

TARGET_DIM = 128  # width of the target-position embedding (AO-GPT's)


class AOGPT(nn.Module):
  traits: ClassVar = Traits(objective="any_order", position_tables=True)
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.backbone = Backbone(c, causal=True, cond_dim=TARGET_DIM, qk_norm=True)
    self.pos_tgt = nn.Embed(
      c.seq_len,
      TARGET_DIM,
      param_dtype=c.params_dtype,
      embedding_init=nn.with_logical_partitioning(layers.dense_init(), ("pos", "cond")),
      name="pos_tgt",
    )

  def _cond(self, tgt_BxN):
    """SiLU of the target positions' embeddings: B x N x TARGET_DIM."""
    return jax.nn.silu(self.pos_tgt(tgt_BxN).astype(self.cfg.compute_dtype))

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    if x_BxL.shape[1] > self.cfg.seq_len:
      raise ValueError(f"aogpt's table holds {self.cfg.seq_len} positions, got L={x_BxL.shape[1]}")
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    rows = full_rows(sigma_BxL)
    ids = RopeIds(q_pos=rows.own, k_pos=rows.own)
    return self.backbone(h_BxLxD, ids, cond_BxLxC=self._cond(rows.tgt))

  def decode(self, prev_BxN, rows: Rows, cache, start):
    """Cached: content rows holding prev tokens (BOS = vocab_size) -> (logits, cache)."""
    h = self.backbone.embed(prev_BxN)
    ids = RopeIds(q_pos=rows.own, k_pos=rows.own)
    return decoding.extend(self.backbone, h, ids, cache, start, cond=self._cond(rows.tgt))
