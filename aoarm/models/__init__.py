"""Model registry: `get_model(cfg)` returns the linen module of `cfg.variant`.

Every module is called as `model.apply({'params': p}, x_BxL, sigma_BxL)`. For the causal variants
the logits are in generation order (row t predicts x[sigma_t]); `ar` ignores sigma. `mdm` takes
partly masked tokens and returns logits in the original layout.
"""

from aoarm.models.ar import AR
from aoarm.models.decoupled_rope import DecoupledRope
from aoarm.models.mdm import MDM
from aoarm.models.model_config import VARIANTS, ModelConfig
from aoarm.models.sigma_gpt import SigmaGPT
from aoarm.models.two_stream import TwoStream

_REGISTRY = {
  "ar": AR,
  "two_stream": TwoStream,
  "decoupled_rope": DecoupledRope,
  "sigma_gpt": SigmaGPT,
  "mdm": MDM,
}
assert set(_REGISTRY) == set(VARIANTS)


def get_model(cfg: ModelConfig):
  return _REGISTRY[cfg.variant](cfg)


__all__ = ["ModelConfig", "VARIANTS", "get_model"]
