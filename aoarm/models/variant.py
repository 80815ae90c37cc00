"""What a variant is, declared by its class (`traits`): objectives, evaluation, sampling, FLOP
counts, diagnostics and the checkpoint meta read these declarations and never compare variant
names, so a new variant is one model file and one registry line (docs/variants.md)."""

import dataclasses

OBJECTIVES = ("left_to_right", "any_order", "masked")
SAMPLERS = ("next_row", "query", "unmask")


@dataclasses.dataclass(frozen=True)
class Traits:
  # left_to_right: NLL in the identity order only (a plain causal LM);
  # any_order: NLL in uniformly random orders, logits in generation order (row t predicts y_t);
  # masked: the masked-diffusion ELBO, logits in the original layout
  objective: str
  # 1: the rows that hold tokens also predict; 2: a separate query stream predicts
  streams: int = 1
  # attention over earlier rows only (False: every row sees every row)
  causal: bool = True
  # next_row: cached decoding along an order fixed in advance, one row per step (`decode`);
  # query: cached decoding that scores any target positions against the cache (`step`,
  #   `query`): k targets per step and confidence-adaptive orders;
  # unmask: iterative unmasking over all positions, no cache
  sampler: str = "next_row"
  # learned position tables of seq_len rows: no position past the training length exists
  position_tables: bool = False
  # takes model.rope.target_heads / model.rope.order_dims (the single-stream probes)
  rope_options: bool = False
  # takes model.own_positions = learned (a learned table of own positions added to the input,
  # no RoPE) besides rope
  position_options: bool = False
  # the target position enters through adaptive norms: takes model.ada_gate_init / ada_cond_std
  adaptive_norm: bool = False

  def __post_init__(self):
    assert self.objective in OBJECTIVES and self.sampler in SAMPLERS, self
    assert self.streams in (1, 2), self

  @property
  def has_order(self) -> bool:
    """Tokens are predicted in a generation order (the causal objectives)."""
    return self.objective != "masked"

  @property
  def random_orders(self) -> bool:
    """Trained (and evaluated) over random orders; False: the identity order only."""
    return self.objective == "any_order"


# variant name -> its Traits, filled by the registry (`aoarm.models`, which imports every variant
# and so runs before any ModelConfig is built); `ModelConfig` reads it here rather than import
# the registry that imports it
TRAITS: dict = {}


def lookup(variant: str) -> Traits:
  if variant not in TRAITS:
    raise ValueError(f"unknown model.variant {variant!r}; expected one of {tuple(TRAITS)}")
  return TRAITS[variant]
