"""JAX's persistent compilation cache, on by default (`train.compile_cache`).

A launch compiles the train step, the eval step and the samplers: tens of seconds to minutes at
the GPT-2 shape. XLA's executables are stored on disk keyed by the lowered program, the compiler
options and the jax/jaxlib version, so a relaunch of the same config (a resume, a sweep's next
seed, an eval) loads them instead. `auto` puts the cache in `$XDG_CACHE_HOME/aoarm/jax`
(`~/.cache/aoarm/jax` when unset), shared by every run of this user; `off` disables it; any other
value is the folder to use (on a pod, a folder every host can read, or one per host).
"""

import logging
import os

import jax

log = logging.getLogger("aoarm")
OFF = ("off", "none", "")


def cache_dir(setting: str) -> str | None:
  if setting in OFF:
    return None
  if setting == "auto":
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "aoarm", "jax")
  return os.path.abspath(os.path.expanduser(setting))


def enable(setting: str) -> str | None:
  """Point JAX's persistent cache at the folder `setting` names (before anything compiles).
  A folder that cannot be created or written only disables the cache, with a warning: the
  run itself does not need it."""
  path = cache_dir(setting)
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
    if not os.access(path, os.W_OK):
      raise PermissionError(f"{path} is not writable")
  except OSError as e:
    log.warning("compilation cache off: %s", e)
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # small programs: no
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def threefry_kernel(on: bool):
  """`train.threefry_kernel`: on a GPU, JAX's threefry hash lowered to one kernel call per draw
  instead of XLA's unrolled integer code (the same bits; the initial state's program then
  compiles in seconds); elsewhere nothing changes. Set before anything is compiled."""
  jax.config.update("jax_threefry_gpu_kernel_lowering", bool(on))
