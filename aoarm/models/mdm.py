"""`mdm`: the masked-diffusion baseline (MDLM, absorbing state). Input: tokens with some replaced
by MASK (the extra embedding row); bidirectional attention; RoPE by own position 0..L-1. Logits
in the original layout, one row per position."""

from typing import ClassVar

import flax.linen as nn
import jax

from aoarm import orders
from aoarm.models.attention import RopeIds
from aoarm.models.backbone import Backbone
from aoarm.models.model_config import ModelConfig
from aoarm.models.variant import Traits


class MDM(nn.Module):
  traits: ClassVar = Traits(objective="masked", causal=False, sampler="unmask")
  cfg: ModelConfig

  def setup(self):
    self.backbone = Backbone(self.cfg, causal=False)

  @property
  def mask_id(self) -> int:
    return self.cfg.vocab_size

  def __call__(self, z_BxL: jax.Array, sigma_BxL: jax.Array | None = None) -> jax.Array:
    """Logits B x L x V for the (partly masked) tokens z; MASK is id vocab_size."""
    B, L = z_BxL.shape
    h_BxLxD = self.perturb("tokens", self.backbone.embed(z_BxL))
    pos_BxL = orders.identity_orders(B, L)
    return self.backbone(h_BxLxD, RopeIds(q_pos=pos_BxL, k_pos=pos_BxL))
