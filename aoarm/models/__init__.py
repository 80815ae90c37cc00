"""Model registry: `get_model(cfg)` returns the linen module of `cfg.variant`; `traits(variant)`
what it is (`models.variant.Traits`), which the rest of aoarm reads instead of its name.

Every module is called as `model.apply({'params': p}, x_BxL, sigma_BxL)`. For the causal variants
the logits are in generation order (row t predicts x[sigma_t]); `ar` ignores sigma. `mdm` takes
partly masked tokens and returns logits in the original layout. Cached decoding: the protocols
of `models.decoding`.
"""

from aoarm.models import variant
from aoarm.models.aogpt import AOGPT
from aoarm.models.ar import AR
from aoarm.models.decoupled_rope import DecoupledRope
from aoarm.models.mdm import MDM
from aoarm.models.model_config import ModelConfig
from aoarm.models.sigma_gpt import SigmaGPT
from aoarm.models.two_stream import TwoStream
from aoarm.models.variant import Traits

_REGISTRY = {
  "ar": AR,
  "two_stream": TwoStream,
  "decoupled_rope": DecoupledRope,
  "sigma_gpt": SigmaGPT,
  "aogpt": AOGPT,
  "mdm": MDM,
}
VARIANTS = tuple(_REGISTRY)
variant.TRAITS.update({name: cls.traits for name, cls in _REGISTRY.items()})


def _cls(variant: str):
  if variant not in _REGISTRY:
    raise ValueError(f"unknown model.variant {variant!r}; expected one of {VARIANTS}")
  return _REGISTRY[variant]


def get_model(cfg: ModelConfig):
  return _cls(cfg.variant)(cfg)


def traits(name: str) -> Traits:
  return variant.lookup(name)


__all__ = ["ModelConfig", "Traits", "VARIANTS", "get_model", "traits"]
