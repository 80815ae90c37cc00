"""Hand-written GPU kernels, behind one door.

The model computes everything with XLA; at five *sites* a hand-written kernel can take XLA's
place, chosen by one knob each (`model.kernels.<site>`: auto | xla | pallas; the log-sum-exp has
no knob and is always `auto`). This module owns those names, the one table of what `auto` does
(`AUTO`), and the entry points the model calls. It imports no kernel code until a kernel runs, so
on a TPU or CPU none of `aoarm/kernels/*` is ever opened: `models/` and `losses.py` hold the XLA
definitions the kernels are tested against.

`pallas` where a kernel cannot run is an error naming the knob: off GPU (a TPU, a CPU) unless the
caller asks for Pallas's CPU interpreter explicitly (`AOARM_KERNELS_INTERPRET=1`, which the
test suite sets), and for the Mosaic GPU matmuls on a GPU other than Hopper (sm_90).
"""

import dataclasses
import math
import os

import jax

IMPLS = ("auto", "xla", "pallas")
INTERPRET_ENV = "AOARM_KERNELS_INTERPRET"


@dataclasses.dataclass(frozen=True)
class Rule:
  """What `auto` needs before it takes a site's kernel (always: one GPU; GSPMD does not
  partition a Pallas call, so under a mesh of several devices the operands would be gathered:
  `pallas` there runs the kernel per device through `sharding.per_device`, untimed)."""

  kernel: str  # what the kernel does
  module: str  # aoarm/kernels/<module>.py
  hopper: bool = False  # a Mosaic GPU (wgmma) kernel: sm_90 only
  min_rows: int = 0  # rows per call below which `auto` keeps XLA (unmeasured there)


# The one table of `auto` rules. Each was measured on an H100/H200 at the GPT-2-small shape
# (RESULTS.md and docs/history.md say where).
AUTO = {
  "norm": Rule("RMSNorm forward and backward, each operand read once (Triton)", "rmsnorm"),
  "logsumexp": Rule("the cross-entropy's log-sum-exp in one read (Triton)", "row_logsumexp"),
  "decode": Rule("cached-decoding attention, flash decoding (Triton)", "flash_decoding"),
  "mlp": Rule("the MLP's GELU in its matmuls' epilogues (Mosaic GPU)", "gelu_mlp", True, 4096),
  "qkv": Rule("q/k/v projection with RoPE in its epilogue (Mosaic GPU)", "qkv_rope", True, 4096),
}


def field(site: str) -> str:
  """The config knob of a site, as errors name it."""
  return f"model.kernels.{site}"


def interpreting() -> bool:
  """Whether Pallas kernels may run in the CPU interpreter (tests ask for it by name)."""
  return os.environ.get(INTERPRET_ENV, "") not in ("", "0")


def hopper() -> bool:
  return str(getattr(jax.devices()[0], "compute_capability", "")).startswith("9")


def check(site: str, impl: str, backend: str | None = None) -> str | None:
  """Why `impl` cannot run at `site` on this backend (None: it can). No device is touched
  where `backend` is given and is not 'gpu' (config checks, before anything is compiled)."""
  if impl not in IMPLS:
    return f"{field(site)} must be one of {IMPLS}, got {impl!r}"
  if impl != "pallas":
    return None
  backend = backend or jax.default_backend()
  if backend != "gpu":
    if interpreting():
      return None
    return (
      f"{field(site)}='pallas' needs a GPU; this backend is {backend} "
      f"(Pallas's CPU interpreter is for tests: {INTERPRET_ENV}=1)"
    )
  if AUTO[site].hopper and not hopper():
    kind = jax.devices()[0].device_kind
    return f"{field(site)}='pallas' needs a Hopper GPU (sm_90), not {kind}"
  if AUTO[site].hopper and jax.config.jax_enable_x64:
    return f"{field(site)}='pallas' (Mosaic GPU) does not trace under jax_enable_x64"
  return None


def resolve(site: str, impl: str = "auto") -> str:
  """'xla' or 'pallas' for `impl` at `site`; ValueError where `pallas` cannot run here."""
  problem = check(site, impl)
  if problem:
    raise ValueError(problem)
  if impl != "auto":
    return impl
  one_gpu = jax.default_backend() == "gpu" and jax.device_count() == 1
  # Mosaic GPU kernels: Hopper only, and their index math breaks under 64-bit JAX (float64
  # sampling, `sample.precision`): `auto` keeps XLA there
  mosaic_ok = hopper() and not jax.config.jax_enable_x64
  return "pallas" if one_gpu and (not AUTO[site].hopper or mosaic_ok) else "xla"


def take(site: str, impl: str, rows: int, why: str | None) -> bool:
  """Whether a call of `rows` rows takes the kernel, `why` naming what the kernel cannot run
  (None: it fits). `auto` falls back to XLA there and below the rule's `min_rows`; `pallas`
  raises, naming the knob."""
  if resolve(site, impl) == "xla":
    return False
  if why is not None and impl == "pallas":
    raise ValueError(f"{field(site)}='pallas' cannot run this call: {why}")
  if impl == "auto" and rows < AUTO[site].min_rows:
    return False
  return why is None


def _shards() -> tuple[int, int]:
  """(row shards, `tensor` shards) under the mesh in context: each device's kernel call sees
  its block (`sharding.per_device`)."""
  from aoarm.infra import sharding

  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return 1, 1
  return math.prod(mesh.shape[a] for a in sharding.BATCH_AXES), mesh.shape["tensor"]


# -- the sites ------------------------------------------------------------------------------


def rms_norm(x_BxLxD, scale_D, eps: float, dtype, keep: bool = False, add=None, blocks=None):
  """`layers.rms_norm` in two kernels (forward, backward) that read each operand once; with
  keep=True also x (or x + add) itself, whose other uses' gradient then joins the same call."""
  from aoarm.kernels import rmsnorm

  return rmsnorm.norm(x_BxLxD, scale_D, eps, dtype, keep, add, blocks)


def use_mlp(impl: str, x_BxLxD: jax.Array, mlp_dim: int, unfit: str | None = None) -> bool:
  """Whether the MLP of this input runs through the kernels. `unfit`: what of the model's MLP
  the kernels cannot run (biases, exact GELU), or None."""
  if resolve("mlp", impl) == "xla":
    return False
  from aoarm.kernels import gelu_mlp

  *lead, d = x_BxLxD.shape
  rows, tensor = _shards()
  why = unfit or gelu_mlp.unfit(math.prod(lead) // rows, d, mlp_dim // tensor, x_BxLxD.dtype)
  return take("mlp", impl, math.prod(lead), why)


def mlp(x_BxLxD, w_in_DxF, w_out_FxD):
  """gelu(x @ w_in) @ w_out (`layers.Mlp`) with both GELU steps in matmul epilogues."""
  from aoarm.kernels import gelu_mlp

  return gelu_mlp.mlp(x_BxLxD, w_in_DxF, w_out_FxD)


def use_qkv(impl: str, x_BxLxD: jax.Array, hk: int, head_dim: int, unfit: str | None) -> bool:
  """Whether the q/k/v projection takes the kernel. `unfit`: what of the model's rotation the
  kernel cannot run (it rotates by one position id per row, right after the projection), or
  None."""
  if resolve("qkv", impl) == "xla":
    return False
  from aoarm.kernels import qkv_rope

  *lead, d = x_BxLxD.shape
  rows = math.prod(lead)
  why = unfit or qkv_rope.unfit(rows // _shards()[0], d, hk, head_dim, x_BxLxD.dtype)
  return take("qkv", impl, rows, why)


def qkv(x_BxLxD, w_DxN, q_pos, k_pos, head_dim: int, base: float):
  """[q, k, v], each B x L x H x K, q and k rotated (`Attention.query_key_value`)."""
  from aoarm.kernels import qkv_rope

  return qkv_rope.project(x_BxLxD, w_DxN, q_pos, k_pos, head_dim, base)


def decode_attention(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B):
  """Every row of batch b against cache rows [0, length_B[b]) (`cached_attention.attend`)."""
  from aoarm.kernels import flash_decoding

  return flash_decoding.attend(q_BxTxHxK, k_BxHxSxK, v_BxHxSxK, length_B)


def cache_rows(rows: int, impl: str) -> int:
  """Cache rows to allocate for `rows` entries: the decode kernel takes a multiple of its split
  (the padding lies past every length, never attended)."""
  if resolve("decode", impl) == "xla":
    return rows
  from aoarm.kernels import flash_decoding

  return -(-rows // flash_decoding.SPLIT) * flash_decoding.SPLIT


def logsumexp(x_NxV: jax.Array) -> jax.Array:
  """log sum_v exp(x[n, v]) in float32 in one read of the logits (`losses.token_nll`)."""
  from aoarm.kernels import row_logsumexp

  return row_logsumexp.logsumexp(x_NxV)
