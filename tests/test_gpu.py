"""Accelerator-only checks (pytest -m gpu): cuDNN fused attention computes what XLA computes."""

import dataclasses

import jax
import numpy as np
import pytest

from helpers import init, tiny

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("variant", ["two_stream", "decoupled_rope", "ar", "mdm"])
def test_cudnn_attention_matches_xla(variant):
  cfg = tiny(variant, seq_len=128, d_model=128, num_heads=2, dtype="bfloat16")
  _, params, x, sigma = init(cfg, batch=4, sharpen=1.0)
  out = {}
  for impl in ("xla", "cudnn"):
    c = dataclasses.replace(cfg, attention_impl=impl)
    from aoarm.models import get_model

    out[impl] = np.asarray(jax.jit(get_model(c).apply)({"params": params}, x, sigma))
  err = np.linalg.norm(out["cudnn"] - out["xla"]) / np.linalg.norm(out["xla"])
  assert err < 2e-2, err
