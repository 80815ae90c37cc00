"""`ar`: the left-to-right baseline. Rows BOS, x_0 .. x_{L-2}; row t predicts x_t; queries and keys
rotated by their own positions (BOS -1, row t: t-1); causal."""

from typing import ClassVar

import flax.linen as nn
import jax

from aoarm import orders
from aoarm.models import decoding
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.inputs import Rows, content_rows, full_rows
from aoarm.models.model_config import ModelConfig
from aoarm.models.variant import Traits


class AR(nn.Module):
  traits: ClassVar = Traits(objective="left_to_right")
  cfg: ModelConfig

  def setup(self):
    self.backbone = Backbone(self.cfg, causal=True)

  def _ids(self, rows: Rows) -> RopeIds:
    return RopeIds(q_pos=rows.own, k_pos=rows.own)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array | None = None) -> jax.Array:
    """Logits B x L x V; row t predicts x_t. `sigma` is ignored (always left to right)."""
    ident_BxL = orders.identity_orders(*x_BxL.shape)
    h_BxLxD = content_rows(self, self.backbone, x_BxL, ident_BxL)
    return self.backbone(h_BxLxD, self._ids(full_rows(ident_BxL)))

  def decode(self, prev_BxN, rows: Rows, cache, start):
    """Cached: content rows holding prev tokens (BOS = vocab_size) -> (logits, cache)."""
    return decoding.extend(
      self.backbone, self.backbone.embed(prev_BxN), self._ids(rows), cache, start
    )
