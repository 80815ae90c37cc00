"""The tanh-approximate GELU's constants and derivative, in jnp ops only: shared by the model's
`gelu` backward (`models.layers`) and the MLP kernel's epilogue (`kernels.gelu_mlp`), so that
the kernels import nothing from the models."""

import jax.numpy as jnp
import numpy as np

GELU_C = float(np.sqrt(2 / np.pi))  # tanh-approximate GELU: 0.5 x (1 + tanh(C (x + A3 x^3)))
GELU_A3 = 0.044715


def gelu_derivative(x):
  """d/dx of the tanh-approximate GELU, in x's dtype: `gelu`'s backward and the MLP kernel's
  epilogue. jnp ops only, x^3 as x * x * x (which Mosaic GPU lowers; bitwise what `x**3`
  gives)."""
  t = jnp.tanh(GELU_C * (x + GELU_A3 * (x * x * x)))
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_A3 * x * x)
