"""Accelerator-only checks (pytest -m gpu): cuDNN fused attention computes what XLA computes."""

import dataclasses

import jax
import numpy as np
import pytest

from helpers import assert_kernel_matches_xla, init, tiny

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("variant", ["two_stream", "decoupled_rope", "ar", "mdm", "aogpt"])
def test_cudnn_attention_matches_xla(variant):
  cfg = tiny(variant, seq_len=128, d_model=128, num_heads=2, dtype="bfloat16")
  _, params, x, sigma = init(cfg, batch=4, sharpen=1.0)
  out = {}
  for impl in ("xla", "cudnn"):
    c = dataclasses.replace(cfg, kernels=dataclasses.replace(cfg.kernels, attention=impl))
    from aoarm.models import get_model

    out[impl] = np.asarray(jax.jit(get_model(c).apply)({"params": params}, x, sigma))
  err = np.linalg.norm(out["cudnn"] - out["xla"]) / np.linalg.norm(out["xla"])
  assert err < 2e-2, err


@pytest.mark.parametrize("variant,k", [("two_stream", 1), ("two_stream", 4), ("decoupled_rope", 1)])
def test_pallas_decode_matches_xla(variant, k):
  """The compiled Triton decode kernel gives the XLA path's log-probs (float32 model; the
  kernel's dots may run in TF32) and the same tokens."""
  from aoarm.sample.sampling import SampleSpec, make_sampler

  cfg = tiny(variant, seq_len=300, d_model=128, num_heads=2)
  _, params, _, _ = init(cfg, sharpen=1.0)
  spec = SampleSpec(length=300, k=k, given=((5, 1), (100, 2)))
  out = {}
  for impl in ("xla", "pallas"):
    from aoarm.models import get_model

    c = dataclasses.replace(cfg, kernels=dataclasses.replace(cfg.kernels, decode=impl))
    out[impl] = make_sampler(get_model(c), c, spec, batch=4)(params, jax.random.key(0))
  lp_x, lp_p = (np.asarray(out[i]["logprob"]) for i in ("xla", "pallas"))
  same = np.asarray(out["xla"]["tokens"]) == np.asarray(out["pallas"]["tokens"])
  assert same.mean() > 0.95, same.mean()  # TF32 may flip a near-tie; the rest must agree
  np.testing.assert_allclose(lp_p[:, :20], lp_x[:, :20], atol=2e-2)


def test_compiled_logsumexp_kernel_matches_xla():
  """The compiled Triton log-sum-exp (not interpret mode) equals XLA's two passes, V not a
  multiple of the column block, bf16 and float32 logits."""
  from aoarm.kernels import row_logsumexp as logsumexp

  x = 30 * jax.random.normal(jax.random.key(0), (256, 5003))
  for dtype in ("float32", "bfloat16"):
    xd = x.astype(dtype)
    want = jax.nn.logsumexp(xd.astype("float32"), axis=-1)
    for R, C in ((1, 4096), (4, 1024)):
      got = jax.jit(lambda a, R=R, C=C: logsumexp.logsumexp(a, R, C))(xd)
      np.testing.assert_allclose(got, want, rtol=1e-6)


def test_compiled_rmsnorm_kernels_match_xla():
  """The compiled Triton RMSNorm forward and backward (not interpret mode) equal autodiff of the
  float32 reference: D=768 (not a power of two), bf16 activations, a residual add formed in the
  kernel, the kept sum's cotangent added."""
  import jax.numpy as jnp

  from aoarm.kernels import rmsnorm
  from aoarm.models import layers

  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(k1, (4096, 768), jnp.bfloat16)
  dres, dy = jax.random.normal(k2, (2, 4096, 768), jnp.bfloat16)
  scale = 1 + 0.1 * jax.random.normal(k3, (768,))
  out = {}
  for impl in ("xla", "pallas"):

    def f(x, a, s, i=impl):
      if i == "pallas":
        return rmsnorm.norm(x, s, 1e-6, jnp.bfloat16, keep=True, add=a)
      return x + a, layers.rms_norm(x + a, s, 1e-6, jnp.bfloat16)

    y, vjp = jax.vjp(f, x, dres, scale)
    out[impl] = (*y, *vjp((dres, dy)))
  for a, b, tol in zip(out["pallas"], out["xla"], (0, 1e-2, 1e-2, 1e-2, 1e-4)):
    a, b = np.float32(a), np.float32(b)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_compiled_logsumexp_kernel_past_2_31_elements():
  """65536 x 50304 logits (B=64 at GPT-2 shape) hold more than 2^31 elements: the last rows'
  offsets must not wrap. Checked on the last rows against XLA."""
  import jax.numpy as jnp

  from aoarm.kernels import row_logsumexp as logsumexp

  N, V = 65536, 50304
  x = jax.random.normal(jax.random.key(0), (N, V), jnp.bfloat16)
  x = x.at[-3:].multiply(8.0)
  want = jax.nn.logsumexp(x[-64:].astype(jnp.float32), axis=-1)
  got = jax.jit(lambda a: logsumexp.logsumexp(a))(x)[-64:]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_compiled_gelu_matmul_kernels_match_reference():
  """The compiled Mosaic-GPU kernels at the production tilings (Hopper only), 4096 x 768 x
  3072: pre, act and the backward's product within one bf16 rounding of float32 XLA."""
  import flax.linen as nn
  import jax.numpy as jnp

  from aoarm import kernels
  from aoarm.kernels import gelu_mlp as gm
  from aoarm.models.layers import gelu_derivative

  if kernels.resolve("mlp") != "pallas":
    pytest.skip("not a single Hopper GPU")
  ks = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(ks[0], (4096, 768), jnp.bfloat16)
  w = (0.03 * jax.random.normal(ks[1], (768, 3072))).astype(jnp.bfloat16)
  g = jax.random.normal(ks[2], (4096, 768), jnp.bfloat16)
  pre, act = jax.jit(lambda x, w: gm.matmul_gelu(x, w, gm.FWD))(x, w)
  ref = jnp.dot(x, w, preferred_element_type=jnp.float32)
  f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
  np.testing.assert_allclose(f32(pre), ref, rtol=8e-3, atol=2e-3)
  np.testing.assert_allclose(f32(act), nn.gelu(f32(pre)), rtol=8e-3, atol=2e-3)
  d = jax.jit(lambda g, w, p: gm.matmul_dgelu(g, w, p, gm.BWD))(g, w, pre)
  d_ref = jnp.dot(g, w, preferred_element_type=jnp.float32) * gelu_derivative(f32(pre))
  np.testing.assert_allclose(f32(d), d_ref, rtol=8e-3, atol=4e-3)


@pytest.mark.parametrize("variant", ["ar", "two_stream"])
def test_compiled_mlp_kernels_model_matches_xla(variant):
  """The whole bf16 model with mlp=pallas (compiled) against xla: loss and gradients."""

  from aoarm import kernels

  if kernels.resolve("mlp") != "pallas":
    pytest.skip("not a single Hopper GPU")
  kw = dict(seq_len=256, d_model=256, num_heads=4)
  assert_kernel_matches_xla(variant, "mlp", jit=True, **kw)


@pytest.mark.parametrize("variant", ["ar", "decoupled_rope", "two_stream"])
def test_compiled_qkv_kernel_model_matches_xla(variant):
  """The whole bf16 model with qkv=pallas (compiled; 6 heads of 64, two 192-wide column
  tiles per region) against xla: loss and gradients. Decoupled RoPE rotates q and k by
  different ids (target and own position)."""
  from aoarm import kernels

  if kernels.resolve("qkv") != "pallas":
    pytest.skip("not a single Hopper GPU")
  kw = dict(seq_len=256, d_model=384, num_heads=6)
  assert_kernel_matches_xla(variant, "qkv", jit=True, **kw)


@pytest.mark.parametrize("shape", [(2, 1, 1), (1, 1, 2)], ids=["data", "tensor"])
def test_compiled_mlp_kernels_per_device_on_two_gpus(shape):
  """mlp=pallas under a mesh of 2 Hopper GPUs: each device runs the kernels on its rows
  and its `tensor` slice of the MLP width (`sharding.per_device`); value and gradients equal
  the one-device call. (Mosaic GPU's interpret mode does not finish under shard_map on CPU.)"""
  import jax.numpy as jnp
  import ml_collections
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from aoarm.infra import sharding
  from aoarm.kernels import gelu_mlp as gm

  devs = jax.devices()
  if len(devs) < 2 or not str(getattr(devs[0], "compute_capability", "")).startswith("9"):
    pytest.skip("needs 2 Hopper GPUs")
  ks = jax.random.split(jax.random.key(2), 4)
  x = jax.random.normal(ks[0], (16, 256, 256), jnp.bfloat16)
  w_in = (0.1 * jax.random.normal(ks[1], (256, 1024))).astype(jnp.bfloat16)
  w_out = (0.05 * jax.random.normal(ks[2], (1024, 256))).astype(jnp.bfloat16)
  r = jax.random.normal(ks[3], x.shape)

  def loss(x, a, b):
    return jnp.sum(r * gm.mlp(x, a, b).astype(jnp.float32))

  grad = jax.value_and_grad(loss, (0, 1, 2))
  ref = jax.jit(grad)(*(jax.device_put(a, devs[0]) for a in (x, w_in, w_out)))
  mesh_cfg = ml_collections.ConfigDict(dict(zip(sharding.MESH_AXES, shape)))
  mesh = sharding.make_mesh(mesh_cfg, devs[:2])

  def step(x, a, b):
    with sharding.activate(mesh, sharding.rules()):
      return grad(x, a, b)

  put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))  # noqa: E731
  args = (put(x, P(sharding.BATCH_AXES)), put(w_in, P("fsdp", "tensor")), put(w_out, P("tensor")))
  out = jax.jit(step)(*args)
  f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
  np.testing.assert_allclose(out[0], ref[0], rtol=1e-2)  # a sum of 4M bf16 products, cancelling
  y = jax.jit(lambda *a: step_y(mesh, *a))(*args)
  y_ref = jax.jit(gm.mlp)(*(jax.device_put(a, devs[0]) for a in (x, w_in, w_out)))
  np.testing.assert_allclose(
    f32(y), f32(y_ref), rtol=1e-2, atol=1e-2 * float(np.abs(f32(y_ref)).max())
  )
  for a, b in zip(out[1], ref[1]):
    np.testing.assert_allclose(f32(a), f32(b), rtol=1e-2, atol=1e-2 * float(np.abs(f32(b)).max()))


def step_y(mesh, x, a, b):
  from aoarm.infra import sharding
  from aoarm.kernels import gelu_mlp as gm

  with sharding.activate(mesh, sharding.rules()):
    return gm.mlp(x, a, b)


def test_ctrl_c_during_the_kernel_compile_saves_and_resumes(tmp_path):
  """Ctrl-C while the first step compiles (GPT-2-like block, Mosaic-GPU kernels on a Hopper GPU:
  a long compile) saves step 1 and exits 130, with no crash; the run then resumes from it."""
  import os
  import signal

  from cli import run, spawn, wait_for

  wd = str(tmp_path / "run")
  flags = ["--config.train.num_steps=4", "--config.train.log_every=1"]
  proc = spawn(wd, *flags, config="configs/two_stream.py", tiny=False)
  wait_for(lambda: os.path.exists(os.path.join(wd, "config.json")), proc=proc, what="start")
  proc.send_signal(signal.SIGINT)
  out = proc.communicate(timeout=600)[0]
  assert proc.returncode == 130, out[-3000:]
  assert "Traceback" not in out and "Segmentation" not in out
  assert os.listdir(os.path.join(wd, "ckpt")) == ["1"], out[-2000:]
  res = run(wd, *flags, config="configs/two_stream.py", tiny=False, timeout=600)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "resuming from step 1" in res.stderr


def test_float64_sampling_keeps_the_mosaic_sites_on_xla():
  """Mosaic GPU kernels do not trace under 64-bit JAX (float64 draws): `auto` keeps XLA for
  them there (found on an H200: mdm and adaptive-order samplers failed with lax.rem int32 vs
  int64), and the Triton sites stay kernels. An mdm model samples in float64 at >= 4096 rows."""
  from aoarm import kernels
  from aoarm.sample.sampling import SampleSpec, make_sampler

  c = tiny("mdm", seq_len=512, dtype="bfloat16")
  model, params, _, _ = init(c, batch=1)
  with jax.enable_x64(True):
    assert kernels.resolve("mlp") == kernels.resolve("qkv") == "xla"
    assert kernels.resolve("norm") == "pallas"
    out = make_sampler(model, c, SampleSpec(length=512, mdm_steps=4, precision="float64"), 16)(
      params, jax.random.key(0), 0.9
    )
    assert np.asarray(out["tokens"]).max() < c.vocab_size
  assert kernels.resolve("mlp") == "pallas"
