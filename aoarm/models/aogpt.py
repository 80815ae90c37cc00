"""`aogpt`: AO-GPT's single stream (Xue et al., ICML 2026) on aoarm's backbone. Rows as in
decoupled_rope (BOS, Emb(y_0) .. Emb(y_{L-2}); row t predicts y_t), causal, queries and keys
rotated by the row's own position. The target position sigma_t enters only through adaptive
layer norm: a learned 128-d embedding of it, through SiLU, sets each block's shifts, scales and
gates and the final norm's shift and scale (`models.adaptive_norm`). Attention has QK-norm.

Own positions: by RoPE (`model.own_positions=rope`, the default), or as AO-GPT has them
(`learned`): a learned table of seq_len + 1 rows (row 0 for BOS) added to the input, no RoPE.
With `THEIR_PARTS` (below: biases, untied head, exact GELU, their epsilon and cut inits) it is
their model's function (`aoarm.tools.convert_aogpt`, `tests/test_aogpt_torch.py`); without
them, aoarm's backbone. AO-GPT's initialisation starts every gate near 0 and the target
position's path as a product of two 0.02-scale matrices, which holds training on the unigram
plateau for thousands of steps; `model.ada_gate_init=1` opens the gates at init and
`model.ada_cond_std=1` gives the target-position embedding unit scale (RESULTS.md, issue 17:
both shorten the plateau).
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

TARGET_DIM = 128  # width of the target-position embedding (AO-GPT's)
# AO-GPT's own model (scxue/AO-GPT-MDM, model_AOGPT_AdaLN6_NoRep_cond_128_trunc_qknorm.py, with
# bias=True as their configs set it) as ModelConfig fields: the one place these are written
# (configs/aogpt.py:MODEL_PARTS, aoarm.tools.convert_aogpt and the tests read them)
THEIR_PARTS = {
  "variant": "aogpt",
  "own_positions": "learned",  # wpe: a table of block_size + 1 rows, no RoPE
  "bias": True,  # nn.Linear(..., bias=True) everywhere
  "tie_embeddings": False,  # lm_head = nn.Linear(n_embd, vocab_size, bias=True)
  "gelu": "exact",  # nn.GELU()
  "norm_eps": 1e-5,  # F.rms_norm(..., 1e-5), QK-norm's too
  "init_trunc": 3.0,  # trunc_normal_(std=0.02, a=-3 std, b=3 std)
}


class AOGPT(nn.Module):
  traits: ClassVar = Traits(
    objective="any_order", position_tables=True, position_options=True, adaptive_norm=True
  )
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.learned = c.own_positions == "learned"
    self.backbone = Backbone(
      c, causal=True, use_rope=not self.learned, cond_dim=TARGET_DIM, qk_norm=True
    )
    if self.learned:  # row own + 1: BOS (own position -1) has row 0
      self.pos_own = layers.position_table(
        c.seq_len + 1, c.d_model, c.params_dtype, "pos_own", c.init_trunc
      )
    self.pos_tgt = nn.Embed(
      c.seq_len,
      TARGET_DIM,
      param_dtype=c.params_dtype,
      embedding_init=nn.with_logical_partitioning(
        layers.dense_init(c.ada_cond_std, c.init_trunc), ("pos", "cond")
      ),
      name="pos_tgt",
    )

  def _cond(self, tgt_BxN):
    """SiLU of the target positions' embeddings: B x N x TARGET_DIM."""
    return jax.nn.silu(self.pos_tgt(tgt_BxN).astype(self.cfg.compute_dtype))

  def _inputs(self, h_BxNxD, rows: Rows):
    """Content rows with their own positions (added, or as RoPE ids) and conditioning."""
    if self.learned:
      h_BxNxD = h_BxNxD + self.pos_own(rows.own + 1).astype(self.cfg.compute_dtype)
      zeros = jnp.zeros_like(rows.own)
      ids = RopeIds(q_pos=zeros, k_pos=zeros)
    else:
      ids = RopeIds(q_pos=rows.own, k_pos=rows.own)
    return h_BxNxD, ids, self._cond(rows.tgt)

  def __call__(self, x_BxL: jax.Array, sigma_BxL: jax.Array) -> jax.Array:
    """Logits B x L x V in generation order: row t predicts y_t = x[sigma_t]."""
    check_order(x_BxL, sigma_BxL)
    if x_BxL.shape[1] > self.cfg.seq_len:
      raise ValueError(f"aogpt's table holds {self.cfg.seq_len} positions, got L={x_BxL.shape[1]}")
    h, ids, cond = self._inputs(
      content_rows(self, self.backbone, x_BxL, sigma_BxL), full_rows(sigma_BxL)
    )
    return self.backbone(h, ids, cond_BxLxC=cond)

  def decode(self, prev_BxN, rows: Rows, cache, start):
    """Cached: content rows holding prev tokens (BOS = vocab_size) -> (logits, cache)."""
    h, ids, cond = self._inputs(self.backbone.embed(prev_BxN), rows)
    return decoding.extend(self.backbone, h, ids, cache, start, cond=cond)
