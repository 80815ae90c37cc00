"""`two_stream`: XLNet-style two-stream attention; both streams share every weight (SPEC §2).

Content stream: rows BOS, Emb(y_0) .. Emb(y_{L-2}), positions (-1, sigma_0, .., sigma_{L-2}),
causal self-attention. Query stream: g_t = w (one learned vector) at position sigma_t; at layer l
row t attends the content stream's layer-l keys/values of rows 0..t (BOS, y_0 .. y_{t-1}), never
its own token. Logits come from the query stream; row t predicts y_t. Both attentions are plain
causal over L rows, so both use the fused kernel.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import orders
from aoarm.models import layers
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import check_order, content_rows
from aoarm.models.model_config import ModelConfig


class TwoStream(nn.Module):
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.backbone = Backbone(c, causal=True)
    self.query_vector = self.param(
      "query_vector",
      nn.with_logical_partitioning(layers.dense_init(), ("embed",)),
      (c.d_model,),
      c.params_dtype,
    )

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: query row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    own_BxL = orders.own_positions(sigma_BxL)
    g_BxLxD = jnp.broadcast_to(self.query_vector.astype(h_BxLxD.dtype), h_BxLxD.shape)
    ids = RopeIds(q_pos=own_BxL, k_pos=own_BxL)
    g_ids = RopeIds(q_pos=sigma_BxL, k_pos=own_BxL)
    return self.backbone(h_BxLxD, ids, g_BxLxD, g_ids)
