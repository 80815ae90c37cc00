"""What to sample (`SampleSpec`): length, order, k, temperature, nucleus, given tokens, and the
checks of a spec against a variant; built from `config.sample` (`from_config`), where a prompt
and infill segments become given (position, token) pairs."""

import dataclasses

import jax

from aoarm import models
from aoarm.infra.errors import UserError
from aoarm.models.variant import Traits

ORDERS = ("random", "l2r", "given", "adaptive")
PRECISIONS = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class SampleSpec:
  length: int
  order: str = "random"  # random | l2r | given | adaptive (the `query` sampler only)
  k: int = 1  # the `query` sampler: targets per step
  temperature: float = 1.0  # 0 = greedy
  top_p: float = 1.0
  given: tuple = ()  # ((position, token), ...) to condition on
  order_positions: tuple = ()  # order=given: the full order (a permutation of 0..length-1)
  mdm_steps: int = 0  # mdm: denoising steps (0 = length)
  unroll: int = 1  # decode loop iterations per trip of the device loop (speed only)
  precision: str = "float32"  # the final draw's logits and Gumbel noise: float32 | float64

  def validate(self, variant: str, vocab_size: int):
    L = self.length
    traits = models.traits(variant)
    if self.order not in ORDERS:
      raise ValueError(f"sample.order must be one of {ORDERS}, got {self.order!r}")
    if self.order == "adaptive" and traits.sampler != "query":
      raise ValueError(
        f"sample.order=adaptive needs a two-stream model (it scores every open position); "
        f"{variant} fixes its order in advance"
      )
    if self.k < 1:
      raise ValueError(f"sample.k={self.k} must be at least 1 (targets per step)")
    if self.k > 1 and traits.sampler != "query":
      raise ValueError(
        f"sample.k={self.k}: several targets per step need a two-stream model; {variant} "
        "samples one token per step (use sample.k=1)"
      )
    if self.unroll < 1:
      raise ValueError(f"sample.unroll must be >= 1, got {self.unroll}")
    bad_t = isinstance(self.temperature, (int, float)) and self.temperature < 0  # else traced
    if bad_t or not 0 < self.top_p <= 1:
      raise ValueError(f"bad temperature {self.temperature} / top_p {self.top_p}")
    if self.precision not in PRECISIONS:
      raise ValueError(f"sample.precision must be one of {PRECISIONS}, got {self.precision!r}")
    if self.precision == "float64" and not jax.config.jax_enable_x64:
      raise ValueError(
        "sample.precision=float64 needs 64-bit JAX (JAX_ENABLE_X64=1, or in Python "
        "`with jax.enable_x64(True)`; gen_eval and --mode=sample switch it on themselves)"
      )
    pos = [p for p, _ in self.given]
    if len(set(pos)) != len(pos) or any(not 0 <= p < L for p in pos):
      raise ValueError(f"given positions must be distinct and in [0, {L}), got {pos}")
    if any(not 0 <= t < vocab_size for _, t in self.given):
      raise ValueError(f"given tokens must be in [0, {vocab_size})")
    if self.order == "given":
      if sorted(self.order_positions) != list(range(L)):
        raise ValueError("sample.order=given needs order_positions, a permutation of 0..L-1")
      if set(self.order_positions[: len(pos)]) != set(pos):
        raise ValueError("sample.order=given: the given positions must come first in the order")

  def prefix_steps(self, traits: Traits) -> int:
    """Leading steps of the order whose tokens are all given (static)."""
    if traits.random_orders:
      return len(self.given)
    pos, n = {p for p, _ in self.given}, 0
    while n in pos:
      n += 1
    return n


def parse_given(tokenizer, prompt: str, infill: str, length: int) -> tuple:
  """Prompt at position 0 plus 'POS=text;POS=text' infill segments -> ((pos, token), ...)."""
  given = {}

  def place(start, text, what):
    ids = tokenizer.encode(text, where=what)
    if start + len(ids) > length:
      raise UserError(f"{what} {text!r} at {start} runs past the sample length {length}")
    for i, t in enumerate(ids):
      if start + i in given:
        raise UserError(f"{what} overlaps another given token at position {start + i}")
      given[start + i] = int(t)

  if prompt:
    place(0, prompt, "sample.prompt")
  for seg in filter(None, infill.split(";")):
    pos, eq, text = seg.partition("=")
    if not eq or not pos.strip().isdigit():
      raise UserError(f"sample.infill segment {seg!r} is not POS=text")
    place(int(pos), text, "sample.infill")
  return tuple(sorted(given.items()))


def from_config(cfg, tokenizer, seq_len: int) -> SampleSpec:
  s = cfg.sample
  length = s.length or seq_len
  if length > seq_len and models.traits(cfg.model.variant).position_tables:
    raise UserError(
      f"sample.length={length} > seq_len={seq_len}: {cfg.model.variant} has learned position "
      "tables, with no positions past L"
    )
  order_positions = tuple(int(p) for p in s.order_positions.split(",") if p.strip())
  return SampleSpec(
    length=length,
    order=s.order,
    k=s.k,
    temperature=s.temperature,
    top_p=s.top_p,
    given=parse_given(tokenizer, s.prompt, s.infill, length),
    order_positions=order_positions,
    mdm_steps=s.mdm_steps,
    unroll=s.unroll,
    precision=s.get("precision", "float32"),
  )
