"""Test setup: 8 fake CPU devices (for sharding tests) and full-precision float32 matmuls.

Plain `pytest` runs on the CPU; `pytest -m gpu` keeps the accelerator for the gpu-marked tests
(skipped on a machine without one).
"""

import os

import pytest


def pytest_configure(config):
  wants_gpu = "gpu" in (config.option.markexpr or "") and "not gpu" not in config.option.markexpr
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  if not wants_gpu:
    os.environ["JAX_PLATFORMS"] = "cpu"
  # The command-line runs of the tests share one compilation cache (train.compile_cache=auto),
  # kept out of the user's own ~/.cache.
  import tempfile

  os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="aoarm-test-cache-")
  # The suite checks the Pallas kernels on the CPU in Pallas's interpreter, which aoarm runs only
  # when asked by name (a user's `pallas` off GPU is an error: tests/test_kernels_door.py).
  os.environ["AOARM_KERNELS_INTERPRET"] = "1"
  import jax

  jax.config.update("jax_default_matmul_precision", "highest")


def pytest_collection_modifyitems(config, items):
  import jax

  kernels_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
  for item in items:
    if str(item.path).startswith(kernels_dir + os.sep):
      item.add_marker(pytest.mark.kernels)

  if jax.default_backend() == "gpu":
    return
  skip = pytest.mark.skip(reason="needs a GPU (pytest -m gpu on an accelerator)")
  for item in items:
    if "gpu" in item.keywords:
      item.add_marker(skip)
