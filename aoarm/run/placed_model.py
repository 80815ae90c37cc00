"""A model placed on a mesh: its module, what its variant is, the logical-axis rules, and its
parameters' shardings and abstract tree. Everything that runs a model (training, evaluation,
sampling, diagnostics) holds one; only training adds an optimizer (`train.Trainer`), so a
restore for evaluation or sampling builds no optimizer state at all.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from aoarm import models
from aoarm.infra import sharding
from aoarm.infra.checkpointing import abstract_with_shardings
from aoarm.models import ModelConfig, get_model


@dataclasses.dataclass
class PlacedModel:
  mcfg: ModelConfig
  mesh: jax.sharding.Mesh

  def __post_init__(self):
    self.model = get_model(self.mcfg)
    self.traits = models.traits(self.mcfg.variant)
    self.rules = sharding.rules()
    boxed = jax.eval_shape(self.init_boxed, jax.random.key(0))
    self.param_shardings = sharding.logical_shardings(boxed, self.mesh, self.rules)
    self.abstract_params = abstract_with_shardings(nn.unbox(boxed), self.param_shardings)
    self.compiled: dict = {}  # functions jitted once for this model (`run.evaluate.eval_fn`)

  def init_boxed(self, rng):
    """The parameters with their logical axis names (boxed), from one dummy batch."""
    x_1xL = jnp.zeros((1, self.mcfg.seq_len), jnp.int32)
    return self.model.init(rng, x_1xL, x_1xL + jnp.arange(self.mcfg.seq_len))["params"]
