"""The MLP's two GELU matmuls with the GELU in the matmul's epilogue (Mosaic GPU, Hopper).

XLA runs `gelu(x @ w_in)` as a cuBLAS GEMM followed by an elementwise pass over the B x L x F
pre-activation (read it, write the activation), and the backward's `(d_act) * gelu'(pre)` as one
more pass after the GEMM `d_y @ w_out^T` (read both, write the result). Here both elementwise
steps run in the GEMM's epilogue, on the float32 accumulator in registers:

- `matmul_gelu(x, w)`: one kernel writes pre = x @ w and act = gelu(pre);
- `matmul_dgelu(g, w_t, pre)`: one kernel writes (g @ w_t) * gelu'(pre), with pre's tile fetched
  into shared memory while the tile's matmul runs.

The kernel is a persistent, warp-specialised wgmma matmul: one producer warpgroup feeds a TMA
pipeline, two consumer warpgroups each own half of a CTA's output tile. Hopper (sm_90) only; the
model takes it through `model.mlp_impl` (`auto`: a single Hopper GPU).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from aoarm import sharding

C = float(np.sqrt(2 / np.pi))
A3 = 0.044715


def gelu_tanh(x):
  """The same GELU through tanh, which `approx` maps to one hardware instruction."""
  return 0.5 * x * (1.0 + jnp.tanh(C * (x + A3 * x * x * x)))


def gelu_derivative(x):
  """d/dx of the tanh-approximate GELU, in x's dtype: the XLA path's custom backward
  (`layers.gelu`) and the backward kernel's epilogue. jnp ops only, x^3 as x * x * x (which
  Mosaic GPU lowers; bitwise what `x**3` gives)."""
  t = jnp.tanh(C * (x + A3 * (x * x * x)))
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * A3 * x * x)


def gelu_f32(x):
  """tanh-approximate GELU (= `nn.gelu`) written with exp: 0.5 (1 + tanh(u)) = sigmoid(2u)."""
  u = C * (x + A3 * x * x * x)
  return x / (1.0 + jnp.exp(-2.0 * u))


def dgelu_f32(x):
  """Its derivative: s + 2 x s (1 - s) u', s = sigmoid(2u) (equal to `gelu_derivative`)."""
  u = C * (x + A3 * x * x * x)
  s = 1.0 / (1.0 + jnp.exp(-2.0 * u))
  return s + 2.0 * x * s * (1.0 - s) * (C * (1.0 + 3.0 * A3 * x * x))


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Each consumer warpgroup owns a tile_m x tile_n block; a CTA's tile is tile_m x 2 tile_n."""

  tile_m: int = 128
  tile_n: int = 128
  tile_k: int = 64
  stages: int = 4
  epi_m: int = 64
  epi_n: int = 64
  snake: int = 8  # grid_tile_width of the planar snake over output tiles (L2 reuse)
  steady: bool = True  # one pipeline across a CTA's tiles: the next tile's loads start early
  approx: bool = True  # hardware tanh (tanh.approx.f32) in the epilogue, not exp and a divide
  math: str = "gelu"  # "none": the epilogue without its arithmetic (for measuring only)


def _check(a, b, t: Tiling, extra=()):
  (m, k), (k2, n) = a.shape, b.shape
  if k != k2:
    raise ValueError(f"matmul shapes {a.shape} and {b.shape} do not agree")
  for name, size, tile in (("m", m, t.tile_m), ("n", n, 2 * t.tile_n), ("k", k, t.tile_k)):
    if size % tile:
      raise ValueError(f"{name}={size} is not a multiple of the tile {tile}")
  for e in extra:
    if e.shape != (m, n):
      raise ValueError(f"epilogue operand of shape {e.shape}, expected {(m, n)}")
  if a.dtype != b.dtype:
    raise ValueError(f"operand dtypes differ: {a.dtype} and {b.dtype}")
  return m, n, k


def _build(mode: str, m: int, n: int, k: int, dtype, t: Tiling):
  """The pallas kernel for `mode` 'gelu' (outputs pre, act) or 'dgelu' (inputs +pre, output d)."""
  from jax import lax
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu

  bits = jnp.dtype(dtype).itemsize * 8
  swz = plgpu.find_swizzle(t.tile_k * bits)
  in_tf = (plgpu.TilingTransform((8, swz * 8 // bits)), plgpu.SwizzleTransform(swz))
  oswz = plgpu.find_swizzle(t.epi_n * bits)
  out_tf = (plgpu.TilingTransform((8, oswz * 8 // bits)), plgpu.SwizzleTransform(oswz))
  cta_n = 2 * t.tile_n
  m_iters, n_iters, k_iters = m // t.tile_m, n // cta_n, k // t.tile_k
  epis = [
    (slice(i * t.epi_m, (i + 1) * t.epi_m), slice(j * t.epi_n, (j + 1) * t.epi_n))
    for i in range(t.tile_m // t.epi_m)
    for j in range(t.tile_n // t.epi_n)
  ]

  if t.math == "none":
    act_fn, dact_fn = (lambda x: x), (lambda x: x)
  elif t.approx:
    act_fn, dact_fn = gelu_tanh, gelu_derivative
  else:
    act_fn, dact_fn = gelu_f32, dgelu_f32
  # Persistent CTAs, at most one per SM; in interpret mode (CPU) 2, so tests reach a CTA
  # with several tiles.
  num_sms = getattr(jax.devices()[0], "core_count", 2) if jax.default_backend() == "gpu" else 2
  num_sms = min(num_sms, m_iters * n_iters)
  stages = min(t.stages, k_iters)
  steady = t.steady and m_iters * n_iters >= 2 * num_sms and k_iters % stages == 0

  def pipeline(body, context, state=None):
    return plgpu.emit_pipeline_warp_specialized(
      body,
      grid=(k_iters,),
      memory_registers=40,
      in_specs=[
        plgpu.BlockSpec(
          (t.tile_m, t.tile_k), lambda kk: (0, kk), transforms=in_tf, memory_space=plgpu.SMEM
        ),
        plgpu.BlockSpec(
          (t.tile_k, cta_n), lambda kk: (kk, 0), transforms=in_tf, memory_space=plgpu.SMEM
        ),
      ],
      wg_axis="wg",
      num_compute_wgs=2,
      max_concurrent_steps=stages,
      compute_context=context,
      pipeline_state=state,
    )

  def kernel(*refs):
    if mode == "gelu":
      a_gmem, b_gmem, pre_gmem, act_gmem = refs
      scratch = dict(
        out_smem=plgpu.SMEM((2, 2, 2, t.epi_m, t.epi_n), dtype, transforms=out_tf),
      )
    else:
      a_gmem, b_gmem, pre_gmem, d_gmem = refs
      scratch = dict(
        out_smem=plgpu.SMEM((2, t.tile_m, t.tile_n), dtype, transforms=out_tf),
        bar=plgpu.Barrier(num_barriers=2),
      )
    ignore = lambda *_, **__: None  # noqa: E731

    @functools.partial(
      pl.run_scoped,
      allocs=pipeline(ignore, ignore).get_allocations(a_gmem, b_gmem),
      collective_axes="wg",
      **scratch,
    )
    def _scope(allocs, out_smem, bar=None):
      wg = lax.axis_index("wg")

      @plgpu.nd_loop((m_iters * n_iters,), collective_axes="cluster_grid")
      def _tile(info):
        (lin,) = info.index
        mi, ni = plgpu.planar_snake(lin, (m_iters, n_iters), 1, t.snake)
        state = None
        if steady:
          last = info.num_local_steps - 1
          state = jnp.where(
            info.local_index == 0,
            int(plgpu.PipelinePipeline.START),
            jnp.where(
              info.local_index == last,
              int(plgpu.PipelinePipeline.STOP),
              int(plgpu.PipelinePipeline.STEADY),
            ),
          ).astype(jnp.int32)
        m_sl = pl.ds(mi * t.tile_m, t.tile_m)
        n_sl = pl.ds(ni * cta_n + wg * t.tile_n, t.tile_n)

        def context(run):
          @functools.partial(pl.run_scoped, acc_ref=plgpu.ACC((t.tile_m, t.tile_n), jnp.float32))
          def _acc(acc_ref):
            if mode == "dgelu":
              plgpu.wait_smem_to_gmem(0, wait_read_only=True)  # the last tile's store read it
              plgpu.copy_gmem_to_smem(pre_gmem.at[m_sl, n_sl], out_smem.at[wg], bar.at[wg])
            run(acc_ref)
            acc = acc_ref[...]
            if mode == "dgelu":
              plgpu.barrier_wait(bar.at[wg])
              for ms, ns in epis:
                p = out_smem.at[wg, ms, ns][...].astype(jnp.float32)
                out_smem.at[wg, ms, ns][...] = (acc[ms, ns] * dact_fn(p)).astype(dtype)
              plgpu.commit_smem()
              plgpu.copy_smem_to_gmem(out_smem.at[wg], d_gmem.at[m_sl, n_sl])
              return
            plgpu.wait_smem_to_gmem(0, wait_read_only=True)
            for i, (ms, ns) in enumerate(epis):
              slot = i % 2
              plgpu.wait_smem_to_gmem(2, wait_read_only=True)
              pre = acc[ms, ns].astype(dtype)
              out_smem[wg, slot, 0] = pre
              out_smem[wg, slot, 1] = act_fn(pre.astype(jnp.float32)).astype(dtype)
              plgpu.commit_smem()
              plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 0], pre_gmem.at[m_sl, n_sl].at[ms, ns])
              plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 1], act_gmem.at[m_sl, n_sl].at[ms, ns])

        def mma(_, a_smem, b_smem, acc_ref):
          plgpu.wgmma(acc_ref, a_smem, b_smem.at[:, pl.ds(wg * t.tile_n, t.tile_n)])
          plgpu.wgmma_wait(0)
          return acc_ref

        pipeline(mma, context, state)(
          a_gmem.at[pl.ds(mi * t.tile_m, t.tile_m), :],
          b_gmem.at[:, pl.ds(ni * cta_n, cta_n)],
          allocations=allocs,
        )

    plgpu.wait_smem_to_gmem(0, wait_read_only=True)

  out = jax.ShapeDtypeStruct((m, n), dtype)
  return plgpu.kernel(
    kernel,
    out_type=(out, out) if mode == "gelu" else out,
    grid=(num_sms,),
    grid_names=("cluster_grid",),
    num_threads=3,
    thread_name="wg",
    interpret=_interpret_params() if jax.default_backend() != "gpu" else None,
    compiler_params=plgpu.CompilerParams(
      lowering_semantics=plgpu.LoweringSemantics.Warpgroup, approx_math=t.approx
    ),
  )


def _interpret_params():
  """Off GPU the kernels run in Mosaic GPU's interpret mode (threads, shared memory and
  barriers simulated on the CPU), which is how the CPU tests check them. Its parameters are not
  public API yet (jax 0.10-0.11)."""
  try:
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams
  except ImportError as e:
    raise ValueError(
      f"this jax ({jax.__version__}) has no Mosaic GPU interpret mode: off GPU use "
      "model.mlp_impl='xla'"
    ) from e
  return InterpretGPUParams()


def matmul_gelu(x_MxK, w_KxN, tiling: Tiling = Tiling()):
  """(pre, act): pre = x @ w in x's dtype (float32 accumulation), act = gelu(pre)."""
  m, n, k = _check(x_MxK, w_KxN, tiling)
  return _build("gelu", m, n, k, x_MxK.dtype, tiling)(x_MxK, w_KxN)


def matmul_dgelu(g_MxK, w_KxN, pre_MxN, tiling: Tiling = Tiling()):
  """(g @ w) * gelu'(pre) in g's dtype: the MLP's backward through the GELU."""
  m, n, k = _check(g_MxK, w_KxN, tiling, (pre_MxN,))
  return _build("dgelu", m, n, k, g_MxK.dtype, tiling)(g_MxK, w_KxN, pre_MxN)


IMPLS = sharding.KERNEL_IMPLS
# The fastest tilings measured on the H100 at the GPT-2 MLP (32768 x 768 x 3072), forward 314 us
# and backward 334 us (`python benchmarks/gelu_matmul_kernel.py --sweep`).
FWD = Tiling(stages=4, epi_n=32)
BWD = Tiling(tile_k=32, stages=6)


def resolve(impl: str = "auto") -> str:
  """`auto`: the kernels on a single Hopper GPU (like the other kernels, `sharding.
  resolve_kernel`); `pallas` elsewhere than Hopper runs them in interpret mode off GPU (tests)
  and is an error on another GPU."""
  r = sharding.resolve_kernel(impl, "MLP implementation")
  if r == "pallas" and jax.default_backend() == "gpu" and not _hopper():
    if impl == "auto":
      return "xla"
    raise ValueError(f"model.mlp_impl='pallas' needs a Hopper GPU (sm_90), not {_kind()}")
  return r


def _kind():
  return jax.devices()[0].device_kind


def _hopper() -> bool:
  return str(getattr(jax.devices()[0], "compute_capability", "")).startswith("9")


def unfit(m: int, d: int, f: int, dtype) -> str | None:
  """Why an M x D @ D x F MLP cannot take the kernels (or None): bf16/fp16 only (wgmma), and
  tile multiples."""
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
    return f"compute dtype {jnp.dtype(dtype).name} (the kernels take bfloat16 or float16)"
  for t in (FWD, BWD):
    for name, size, tile in (("rows", m, t.tile_m), ("mlp_dim", f, 2 * t.tile_n)):
      if size % tile:
        return f"{name}={size} is not a multiple of {tile}"
    if d % t.tile_k:
      return f"d_model={d} is not a multiple of {t.tile_k}"
  return None


AUTO_MIN_ROWS = 4096  # `auto` takes the kernels from this many rows (measured at 32768)


def use_kernels(impl: str, x_BxLxD, mlp_dim: int) -> bool:
  """Whether `impl` (resolved) runs the MLP through the kernels for this input: `auto` falls
  back to XLA where the shape or dtype does not fit or below AUTO_MIN_ROWS rows; `pallas`
  raises where they do not fit, naming the reason."""
  if resolve(impl) == "xla":
    return False
  *lead, d = x_BxLxD.shape
  rows, tensor = _shards()
  why = unfit(int(np.prod(lead)) // rows, d, mlp_dim // tensor, x_BxLxD.dtype)
  if why is not None and impl == "pallas":
    raise ValueError(f"model.mlp_impl='pallas' cannot run this MLP: {why}")
  if impl == "auto" and int(np.prod(lead)) < AUTO_MIN_ROWS:
    return False  # cached decoding's few rows per call: the kernels' speed there is unmeasured
  return why is None


def _shards() -> tuple[int, int]:
  """(row shards, MLP-width shards) under the mesh in context: each device's kernel call sees
  its block (`per_device`)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return 1, 1
  return int(np.prod([mesh.shape[a] for a in sharding.BATCH_AXES])), mesh.shape["tensor"]


ROWS = P(sharding.BATCH_AXES, None)
ROWS_F = P(sharding.BATCH_AXES, "tensor")
COLS_F = P(None, "tensor")


def _mlp_fwd(x, w_in, w_out):
  pre, act = sharding.per_device(
    lambda x, w: matmul_gelu(x, w, FWD), (x, w_in), (ROWS, COLS_F), (ROWS_F, ROWS_F)
  )
  return jnp.dot(act, w_out), (x, w_in, w_out, pre, act)


def _mlp_bwd(res, dy):
  x, w_in, w_out, pre, act = res
  d_pre = sharding.per_device(
    lambda g, w, p: matmul_dgelu(g, w, p, BWD),
    (dy, w_out.T, pre),
    (ROWS, COLS_F, ROWS_F),
    ROWS_F,
  )
  f32 = jnp.float32
  d_w_out = jnp.dot(act.T, dy, preferred_element_type=f32).astype(w_out.dtype)
  d_w_in = jnp.dot(x.T, d_pre, preferred_element_type=f32).astype(w_in.dtype)
  return jnp.dot(d_pre, w_in.T).astype(x.dtype), d_w_in, d_w_out


@jax.custom_vjp
def _mlp(x_MxD, w_in_DxF, w_out_FxD):
  return _mlp_fwd(x_MxD, w_in_DxF, w_out_FxD)[0]


_mlp.defvjp(_mlp_fwd, _mlp_bwd)


def mlp(x_BxLxD, w_in_DxF, w_out_FxD):
  """gelu(x @ w_in) @ w_out with both GELU steps in the kernels' epilogues. Residuals for the
  backward: pre and act (as XLA's path keeps). Under a mesh of several devices each device runs
  the kernels on its rows (and its `tensor` slice of the MLP width)."""
  *lead, d = x_BxLxD.shape
  y = _mlp(x_BxLxD.reshape(-1, d), w_in_DxF, w_out_FxD)
  return y.reshape(*lead, y.shape[-1])
