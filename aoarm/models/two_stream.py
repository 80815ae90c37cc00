"""`two_stream`: XLNet-style two-stream attention; both streams share every weight
(docs/variants.md).

Content stream: rows BOS, Emb(y_0) .. Emb(y_{L-2}), positions (-1, sigma_0, .., sigma_{L-2}),
causal self-attention. Query stream: g_t = w (one learned vector) at position sigma_t; at layer l
row t attends the content stream's layer-l keys/values of rows 0..t (BOS, y_0 .. y_{t-1}), never
its own token. Logits come from the query stream; row t predicts y_t. Both attentions are plain
causal over L rows, so both use the fused kernel.

Cached decoding (docs/sampling.md, `models.decoding.QueryDecoder`): `step` appends content rows
to the k/v cache and scores target positions in the same pass; `query` scores any target
positions against the cache, so k targets can be predicted per step in any order.
"""

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


class TwoStream(nn.Module):
  traits: ClassVar = Traits(objective="any_order", streams=2, sampler="query")
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.backbone = Backbone(c, causal=True)
    self.query_vector = self.param(
      "query_vector",
      nn.with_logical_partitioning(layers.dense_init(0.02, c.init_trunc), ("embed",)),
      (c.d_model,),
      c.params_dtype,
    )

  def _g(self, tgt_BxN):
    B, N = tgt_BxN.shape
    dt = self.cfg.compute_dtype
    g = jnp.broadcast_to(self.query_vector.astype(dt), (B, N, self.cfg.d_model))
    return g, RopeIds(q_pos=tgt_BxN, k_pos=tgt_BxN)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: query row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    h_BxLxD = content_rows(self, self.backbone, x_BxL, sigma_BxL)
    rows = full_rows(sigma_BxL)
    g_BxLxD, g_ids = self._g(sigma_BxL)
    return self.backbone(h_BxLxD, RopeIds(q_pos=rows.own, k_pos=rows.own), g_BxLxD, g_ids)

  def step(self, prev_BxN, rows: Rows, tgt_BxM, cache, start):
    """One fused sampling step: append content rows for prev tokens at [start, start+N) and
    score targets against rows [0, start+N). Returns (logits B x M x V, cache)."""
    h = self.backbone.embed(prev_BxN)
    g, g_ids = self._g(tgt_BxM)
    ids = RopeIds(q_pos=rows.own, k_pos=rows.own)
    return decoding.extend_query(self.backbone, h, ids, g, g_ids, cache, start)

  def query(self, tgt_BxN, cache, length):
    """Logits B x N x V for target positions tgt against cache rows [0, length)."""
    g, g_ids = self._g(tgt_BxN)
    return decoding.query(self.backbone, g, g_ids, cache, length)
