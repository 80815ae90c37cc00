"""Issue 32: `train.init_on=host` draws the initial state with the CPU backend and places it with
the state's shardings; on a CPU it is the device path's state bit for bit, under any mesh."""

import jax
import numpy as np
import pytest

from aoarm.infra import sharding
from aoarm.infra.errors import UserError
from aoarm.models import ModelConfig
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig

from helpers import AOGPT_CONFIG, tiny_run_config


def _trainer(variant, init_on, shape, **over):
  c = tiny_run_config(variant, **{"train.init_on": init_on, "train.ema_decay": 0.9}, **over)
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = shape
  mcfg = ModelConfig.from_config(dict(c.model, vocab_size=8), c.data.seq_len)
  return Trainer(TrainConfig.from_config(c), mcfg, sharding.make_mesh(c.mesh, jax.devices()))


@pytest.mark.parametrize(
  "variant,shape,over",
  [
    ("two_stream", (4, 2, 1), {}),
    ("aogpt", (4, 1, 2), AOGPT_CONFIG),  # biases, an untied head, learned positions
  ],
)
def test_host_init_is_the_device_init_placed_alike(variant, shape, over):
  assert len(jax.devices()) == 8
  dev = _trainer(variant, "device", shape, **over)
  host = _trainer(variant, "host", shape, **over)
  a, b = dev.init_state(jax.random.key(3)), host.init_state(jax.random.key(3))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y, s in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(dev.state_shardings)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert y.sharding.is_equivalent_to(s, y.ndim), (y.sharding, s)
  assert max(float(np.asarray(p).std()) for p in jax.tree.leaves(b.params)) > 0  # drawn
  # the host state trains like the device's: one step, the same loss
  x = np.random.default_rng(0).integers(0, 8, (8, 16), dtype=np.int32)
  la = float(dev.train_step(a, sharding.global_batch(x, dev.mesh))[1]["loss"])
  lb = float(host.train_step(b, sharding.global_batch(x, host.mesh))[1]["loss"])
  assert la == lb


def test_host_init_refuses_several_processes(monkeypatch):
  host = _trainer("two_stream", "host", (8, 1, 1))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(UserError, match="train.init_on=host"):
    host.init_state(jax.random.key(0))


def test_host_init_needs_the_cpu_backend(monkeypatch):
  host = _trainer("two_stream", "host", (8, 1, 1))

  def no_cpu(backend=None):
    raise RuntimeError(f"Unknown backend {backend}")

  monkeypatch.setattr(jax, "local_devices", no_cpu)
  with pytest.raises(UserError, match="train.init_on=host needs JAX's CPU backend"):
    host.init_state(jax.random.key(0))


def test_a_run_sets_the_threefry_kernel_as_its_config_says(tmp_path):
  """`train.threefry_kernel` (default on): a run's programs lower JAX's threefry to one GPU
  kernel call per draw (the same bits; on a CPU nothing changes), set before anything compiles."""
  from aoarm.infra import compile_cache
  from aoarm.run import setup

  assert tiny_run_config().train.threefry_kernel is True
  try:
    for on in (False, True):
      c = tiny_run_config(**{"train.threefry_kernel": on})
      setup.prepare(c, str(tmp_path / f"run_{on}"), "train")
      assert jax.config.jax_threefry_gpu_kernel_lowering is on
  finally:
    compile_cache.threefry_kernel(False)
