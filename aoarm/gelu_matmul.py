"""The MLP's two GELU matmuls with the GELU in the matmul's epilogue (Mosaic GPU, Hopper).

XLA runs `gelu(x @ w_in)` as a cuBLAS GEMM followed by an elementwise pass over the B x L x F
pre-activation (read it, write the activation), and the backward's `(d_act) * gelu'(pre)` as one
more pass after the GEMM `d_y @ w_out^T` (read both, write the result). Here both elementwise
steps run in the GEMM's epilogue, on the float32 accumulator in registers:

- `matmul_gelu(x, w)`: one kernel writes pre = x @ w and act = gelu(pre);
- `matmul_dgelu(g, w_t, pre)`: one kernel writes (g @ w_t) * gelu'(pre), with pre's tile fetched
  into shared memory while the tile's matmul runs.

The kernel is a persistent, warp-specialised wgmma matmul with a ping-pong schedule: one producer
warpgroup feeds a TMA ring, two consumer warpgroups take whole output tiles in turn, so one's
epilogue overlaps the other's matmul. Hopper (sm_90) only; the model takes it through
`model.mlp_impl` (`auto`: a single Hopper GPU).
"""

import dataclasses

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
  """Each consumer warpgroup computes whole tile_m x tile_n output tiles (ping-pong)."""

  tile_m: int = 128
  tile_n: int = 128
  tile_k: int = 64
  stages: int = 4  # operand stages in the TMA ring that both consumers share (at least 2)
  epi_m: int = 64
  epi_n: int = 64
  slots: int = 2  # forward: staging buffers for (pre, act) slices per consumer
  snake: int = 16  # grid_tile_width of the planar snake over output tiles (L2 reuse)
  release: bool = True  # keep one wgmma in flight: a stage is released one step late
  approx: bool = True  # hardware tanh (tanh.approx.f32) in the epilogue, not exp and a divide
  math: str = "gelu"  # "none": the epilogue without its arithmetic (for measuring only)


def _check(a, b, t: Tiling, extra=()):
  (m, k), (k2, n) = a.shape, b.shape
  if k != k2:
    raise ValueError(f"matmul shapes {a.shape} and {b.shape} do not agree")
  for name, size, tile in (("m", m, t.tile_m), ("n", n, t.tile_n), ("k", k, t.tile_k)):
    if size % tile:
      raise ValueError(f"{name}={size} is not a multiple of the tile {tile}")
  if t.stages < 2 or t.tile_m % t.epi_m or t.tile_n % t.epi_n:
    raise ValueError(f"bad tiling {t}: stages >= 2, epilogue slices dividing the tile")
  for e in extra:
    if e.shape != (m, n):
      raise ValueError(f"epilogue operand of shape {e.shape}, expected {(m, n)}")
  if a.dtype != b.dtype:
    raise ValueError(f"operand dtypes differ: {a.dtype} and {b.dtype}")
  return m, n, k


def _build(mode: str, m: int, n: int, k: int, dtype, t: Tiling):
  """The pallas kernel for `mode` 'gelu' (outputs pre, act) or 'dgelu' (inputs +pre, output d).

  Persistent CTAs (one per SM), three warpgroups each: a producer that streams A and B tiles
  through a ring of `stages` shared-memory stages by TMA, and two consumers that take the CTA's
  output tiles in turn (consumer 0 its even tiles, 1 its odd ones). The ring is filled in tile
  order, so while one consumer runs its epilogue the other's wgmmas keep the tensor cores busy.
  """
  from jax import lax
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu

  bits = jnp.dtype(dtype).itemsize * 8
  swz = plgpu.find_swizzle(t.tile_k * bits)
  in_tf = (plgpu.TilingTransform((8, swz * 8 // bits)), plgpu.SwizzleTransform(swz))
  oswz = plgpu.find_swizzle(t.epi_n * bits)
  out_tf = (plgpu.TilingTransform((8, oswz * 8 // bits)), plgpu.SwizzleTransform(oswz))
  m_iters, n_iters, k_iters = m // t.tile_m, n // t.tile_n, k // t.tile_k
  tiles, S = m_iters * n_iters, min(t.stages, 2 * k_iters)
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
  # At most one CTA per SM; in interpret mode (CPU) 2, so tests reach CTAs of several tiles.
  num_sms = getattr(jax.devices()[0], "core_count", 2) if jax.default_backend() == "gpu" else 2
  G = min(num_sms, tiles)
  if mode == "gelu":  # per consumer: `slots` (pre, act) slice pairs in flight to HBM
    out_smem = plgpu.SMEM((2, t.slots, 2, t.epi_m, t.epi_n), dtype, transforms=out_tf)
  else:  # per consumer: two slices, pre's next slice loading while the last result stores
    out_smem = plgpu.SMEM((2, 2, t.epi_m, t.epi_n), dtype, transforms=out_tf)

  def kernel(a_gmem, b_gmem, *refs):
    def scope(a_smem, b_smem, out_smem, a_bar, b_bar, consumed, pre_bar):
      wg, cta = lax.axis_index("wg"), lax.axis_index("cta")
      n_local = (tiles - cta + G - 1) // G  # this CTA's tiles: cta + j G, j < n_local

      def where(j):
        mi, ni = plgpu.planar_snake(cta + j * G, (m_iters, n_iters), 1, t.snake)
        return pl.ds(mi * t.tile_m, t.tile_m), pl.ds(ni * t.tile_n, t.tile_n)

      @pl.when(wg < 2)
      def _consumer():
        plgpu.set_max_registers(232, action="increase")

        @pl.loop(0, (n_local - wg + 1) // 2)
        def _tile(i):
          j = wg + 2 * i
          m_sl, n_sl = where(j)
          if mode == "dgelu":  # pre's first slice loads while the main loop runs
            pre_gmem, d_gmem = refs
            plgpu.wait_smem_to_gmem(0, wait_read_only=True)
            ms, ns = epis[0]
            plgpu.copy_gmem_to_smem(
              pre_gmem.at[m_sl, n_sl].at[ms, ns], out_smem.at[wg, 0], pre_bar.at[2 * wg]
            )

          def mainloop(acc_ref):
            @pl.loop(0, k_iters)
            def _k(kk):
              step = j * k_iters + kk
              slot = lax.rem(step, S)
              plgpu.barrier_wait(a_bar.at[wg * S + slot])
              plgpu.barrier_wait(b_bar.at[wg * S + slot])
              plgpu.wgmma(acc_ref, a_smem.at[slot], b_smem.at[slot])
              if t.release:  # the previous step's wgmma is done: release its stage
                plgpu.wgmma_wait(1)
                pl.when(kk > 0)(lambda: plgpu.barrier_arrive(consumed.at[lax.rem(step + S - 1, S)]))
              else:
                plgpu.wgmma_wait(0)
                plgpu.barrier_arrive(consumed.at[slot])

            if t.release:
              plgpu.wgmma_wait(0)
              plgpu.barrier_arrive(consumed.at[lax.rem(j * k_iters + k_iters - 1, S)])
            return acc_ref[...]

          acc = pl.run_scoped(mainloop, plgpu.ACC((t.tile_m, t.tile_n), jnp.float32))
          if mode == "dgelu":
            for e, (ms, ns) in enumerate(epis):
              slot = e % 2
              if e + 1 < len(epis):  # the next slice of pre, once the last store has read it
                plgpu.wait_smem_to_gmem(0, wait_read_only=True)
                nxt = pre_gmem.at[m_sl, n_sl].at[epis[e + 1]]
                plgpu.copy_gmem_to_smem(
                  nxt, out_smem.at[wg, 1 - slot], pre_bar.at[2 * wg + 1 - slot]
                )
              plgpu.barrier_wait(pre_bar.at[2 * wg + slot])
              p = out_smem[wg, slot].astype(jnp.float32)
              out_smem[wg, slot] = (acc[ms, ns] * dact_fn(p)).astype(dtype)
              plgpu.commit_smem()
              plgpu.copy_smem_to_gmem(out_smem.at[wg, slot], d_gmem.at[m_sl, n_sl].at[ms, ns])
          else:
            pre_gmem, act_gmem = refs
            for e, (ms, ns) in enumerate(epis):
              slot = e % t.slots
              plgpu.wait_smem_to_gmem(2 * (t.slots - 1), wait_read_only=True)  # slot is free
              pre = acc[ms, ns].astype(dtype)
              out_smem[wg, slot, 0] = pre
              out_smem[wg, slot, 1] = act_fn(pre.astype(jnp.float32)).astype(dtype)
              plgpu.commit_smem()
              plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 0], pre_gmem.at[m_sl, n_sl].at[ms, ns])
              plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 1], act_gmem.at[m_sl, n_sl].at[ms, ns])

        plgpu.wait_smem_to_gmem(0, wait_read_only=True)

      @pl.when(wg == 2)
      def _producer():
        plgpu.set_max_registers(40, action="decrease")

        @pl.loop(0, n_local)
        def _tile(j):
          w = lax.rem(j, 2)  # the consumer of tile j: its own barriers, so phases stay in step
          m_sl, n_sl = where(j)

          @pl.loop(0, k_iters)
          def _k(kk):
            step = j * k_iters + kk
            slot = lax.rem(step, S)
            pl.when(step >= S)(lambda: plgpu.barrier_wait(consumed.at[slot]))
            k_sl = pl.ds(kk * t.tile_k, t.tile_k)
            plgpu.copy_gmem_to_smem(a_gmem.at[m_sl, k_sl], a_smem.at[slot], a_bar.at[w * S + slot])
            plgpu.copy_gmem_to_smem(b_gmem.at[k_sl, n_sl], b_smem.at[slot], b_bar.at[w * S + slot])

        # The last stages' releases too: every barrier phase is observed (interpret mode checks
        # that) and the buffers outlive their last reads.
        total = n_local * k_iters

        @pl.loop(lax.max(total - S, 0), total)
        def _drain(step):
          plgpu.barrier_wait(consumed.at[lax.rem(step, S)])

    pl.run_scoped(
      scope,
      plgpu.SMEM((S, t.tile_m, t.tile_k), dtype, transforms=in_tf),
      plgpu.SMEM((S, t.tile_k, t.tile_n), dtype, transforms=in_tf),
      out_smem,
      plgpu.Barrier(num_barriers=2 * S),  # A stage loaded, per (consumer, stage)
      plgpu.Barrier(num_barriers=2 * S),  # B stage loaded
      plgpu.Barrier(num_barriers=S),  # stage released
      plgpu.Barrier(num_barriers=4),  # pre slice loaded, per (consumer, slot)
      collective_axes="wg",
    )

  out = jax.ShapeDtypeStruct((m, n), dtype)
  return plgpu.kernel(
    kernel,
    out_type=(out, out) if mode == "gelu" else out,
    grid=(G,),
    grid_names=("cta",),
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
# The fastest tilings measured on the H100 at the GPT-2 MLP (32768 x 768 x 3072): 128 x 192
# tiles, forward 253 us and backward 278 us; where the MLP width is not a multiple of 192,
# 128 x 128 tiles with a deeper ring, 291 and 298 us (`python benchmarks/gelu_matmul_kernel.py
# --sweep`).
FWD = BWD = Tiling(tile_n=192)
FWD_128, BWD_128 = Tiling(stages=6, epi_n=32), Tiling(stages=6)


def tilings(mlp_dim: int) -> tuple[Tiling, Tiling]:
  """(forward, backward) tilings for an MLP of this width."""
  return (FWD, BWD) if mlp_dim % FWD.tile_n == 0 else (FWD_128, BWD_128)


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
  for t in tilings(f):
    for name, size, tile in (("rows", m, t.tile_m), ("mlp_dim", f, t.tile_n)):
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
    lambda x, w: matmul_gelu(x, w, tilings(w.shape[1])[0]),
    (x, w_in),
    (ROWS, COLS_F),
    (ROWS_F, ROWS_F),
  )
  return jnp.dot(act, w_out), (x, w_in, w_out, pre, act)


def _mlp_bwd(res, dy):
  x, w_in, w_out, pre, act = res
  d_pre = sharding.per_device(
    lambda g, w, p: matmul_dgelu(g, w, p, tilings(w.shape[1])[1]),
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
