"""Leakage with the hand-written kernels inside custom VJPs (interpret mode off GPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_leakage import per_step_nll_fn

from aoarm import orders

from helpers import init, kernel_layers, tiny

KERNELS = {  # the hand-written kernels inside custom VJPs (interpret mode off GPU)
  "mlp": dict(mlp="pallas", dtype="bfloat16"),  # bf16, tile-sized: 128 rows, 64 x 256
  "norm": dict(norm="pallas"),
  # 3 heads of 64 (the kernel's 192-wide tiles), 128 rows; its backward is XLA's, but its
  # forward writes q, k, v through tiles of the stacked matmul
  "qkv": dict(qkv="pallas", dtype="bfloat16", d_model=192, num_heads=3),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("variant", ["ar", "two_stream"])
def test_step_loss_blind_with_kernels(variant, kernel):
  """The GELU-matmul and RMSNorm kernels sit inside custom VJPs whose backward is written by
  hand: a gradient test sees only that backward (an MLP kernel that swapped rows between the
  sequences passed it), so the forward is checked by changing tokens. Changing every token
  from rank 40 on in sequence 0, and all of sequence 1, leaves sequence 0's logits at steps
  <= 40 bit-equal (step 41 moves); and step 5's gradient in sequence 1 vanishes on its target,
  later tokens and the other sequence. (Two forwards and one gradient: each interpreted kernel
  call costs seconds on a CPU.)"""
  cfg = tiny(
    variant,
    **{"seq_len": 64, "d_model": 64, "num_layers": kernel_layers(variant), **KERNELS[kernel]},
  )
  model, params, x, sigma = init(cfg, batch=2)
  if variant == "ar":
    sigma = orders.identity_orders(*x.shape)
  rank = np.asarray(orders.inverse(sigma))
  logits = np.asarray(model.apply({"params": params}, x, sigma), np.float32)
  t = 40
  x2 = x.at[0].set(jnp.where(rank[0] >= t, (x[0] + 1) % cfg.vocab_size, x[0]))
  x2 = x2.at[1].set((x[1] + 1) % cfg.vocab_size)
  logits2 = np.asarray(model.apply({"params": params}, x2, sigma), np.float32)
  np.testing.assert_array_equal(logits2[0, : t + 1], logits[0, : t + 1])
  assert not np.array_equal(logits2[0, t + 1], logits[0, t + 1])
  f = per_step_nll_fn(model, params, x, sigma)
  delta = jnp.zeros((*x.shape, cfg.d_model))
  b, t = 1, 5
  g = np.asarray(jax.grad(lambda d: f(d)[b, t].astype(jnp.float32))(delta))
  g_pos = np.abs(g[b]).sum(-1)
  assert np.all(g_pos[rank[b] >= t] == 0.0), (variant, b, t)
  assert g_pos[rank[b] < t].max() > 0
  assert np.all(g[1 - b] == 0.0)
