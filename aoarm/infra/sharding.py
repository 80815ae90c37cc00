"""Mesh ('data', 'fsdp', 'tensor') from config, logical-axis rules, and shardings of the state.

Parameters carry logical axis names (`nn.with_logical_partitioning`); the rule table below maps
them to mesh axes, so the same model shards under any mesh. Batches shard over data x fsdp.
"""

import contextlib
import math

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from aoarm.infra.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical axis -> mesh axis (None: replicated). Parameters and activations.
DEFAULT_RULES = (
  ("batch", BATCH_AXES),
  ("length", None),
  ("vocab", "tensor"),
  ("embed", "fsdp"),
  ("mlp", "tensor"),
  ("heads", "tensor"),
  ("kv", None),
  ("pos", None),
  ("cond", None),  # adaptive norm: the conditioning vector's width
  ("mod", None),  # adaptive norm: which shift / scale / gate
  ("act_embed", None),
  ("act_mlp", "tensor"),
  ("act_heads", "tensor"),
  ("act_vocab", "tensor"),
)


@contextlib.contextmanager
def activate(mesh: Mesh | None, rule_table):
  """The logical-axis rules and the mesh, entered inside a jitted function. flax applies
  `nn.with_logical_constraint` (activations at block boundaries, the KV cache) only when a mesh
  is in context: under the rules alone every constraint is silently a no-op."""
  with contextlib.ExitStack() as stack:
    if mesh is not None:
      stack.enter_context(jax.sharding.use_abstract_mesh(mesh.abstract_mesh))
    stack.enter_context(nn.logical_axis_rules(rule_table))
    yield


def per_device(f, args, in_specs, out_specs):
  """f on each device's block of the operands (shard_map over the mesh in context), or f itself
  where no mesh of several devices is in context. For Pallas kernels, which GSPMD does not
  partition: called under a mesh, their operands would be gathered onto every device. The
  sharded operands' dimension 0 must divide over the axes its spec names, else f runs unsplit
  (correct, gathered)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return f(*args)
  for a, spec in zip(args, in_specs):
    if a is not None and len(spec) and spec[0]:
      axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
      if a.shape[0] % math.prod(mesh.shape[ax] for ax in axes):
        return f(*args)
  return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)(*args)


def mesh_shape(mesh_cfg, num_devices: int) -> tuple[int, int, int]:
  dims = [int(mesh_cfg.data), int(mesh_cfg.fsdp), int(mesh_cfg.tensor)]
  if dims.count(-1) > 1:
    raise UserError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, dims))}")
  if any(d == 0 or d < -1 for d in dims):
    raise UserError(f"mesh axes must be positive or -1, got {dict(zip(MESH_AXES, dims))}")
  known = math.prod(d for d in dims if d != -1)
  if -1 in dims:
    if num_devices % known:
      raise UserError(f"mesh {dict(zip(MESH_AXES, dims))} does not divide {num_devices} devices")
    dims[dims.index(-1)] = num_devices // known
  if math.prod(dims) != num_devices:
    raise UserError(
      f"mesh {dict(zip(MESH_AXES, dims))} needs {math.prod(dims)} devices, "
      f"this run has {num_devices}"
    )
  return tuple(dims)


def make_mesh(mesh_cfg, devices=None) -> Mesh:
  devices = devices if devices is not None else jax.devices()
  shape = mesh_shape(mesh_cfg, len(devices))
  try:
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)
  except (TypeError, ValueError):
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def rules(extra=()) -> tuple:
  return tuple(extra) + DEFAULT_RULES


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def logical_shardings(abstract_tree, mesh: Mesh, rule_table):
  """Shardings for a (boxed) abstract tree from its logical axis names."""
  specs = nn.get_partition_spec(abstract_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rule_table)


def global_batch_from_full(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A batch every process holds in full -> one global array; each process contributes its
  contiguous block of rows (so global row i stays row i, e.g. for per-window eval seeds)."""
  n, p = jax.process_count(), jax.process_index()
  if x.shape[0] % n:
    raise ValueError(f"batch of {x.shape[0]} rows does not divide over {n} processes")
  per = x.shape[0] // n
  return global_batch(x[p * per : (p + 1) * per], mesh)


def global_batch(local_x: np.ndarray, mesh: Mesh) -> jax.Array:
  """This process's rows -> one global array sharded over the batch axes."""
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:
    return jax.device_put(local_x, sharding)
  return jax.make_array_from_process_local_data(sharding, local_x)
