"""A Hopper (sm_90) matmul with a ping-pong schedule and a pluggable epilogue (Mosaic GPU).

Persistent CTAs, one per SM, of three warpgroups: a producer that streams A and B tiles through a
ring of `stages` shared-memory stages by TMA, and two consumers that take the CTA's output tiles
in turn (consumer 0 its even tiles, 1 its odd ones), each with a whole tile_m x tile_n float32
accumulator in registers. The ring is filled in tile order, so while one consumer runs its
epilogue the other's wgmmas keep the tensor cores busy. Against two consumers that split one
tile (and so finish and run their epilogues together) this took the MLP's GELU matmuls from 314
to 253-260 us forward and 334 to 278-285 backward (H100, 32768 x 768 x 3072).

The caller's epilogue writes the outputs: `start(tile)` runs as a tile begins (before its main
loop: e.g. prefetch an operand), `finish(tile, acc)` after it, with the accumulator.
`kernels.gelu_mlp` (the MLP) and `kernels.qkv_rope` (attention's projection) use it.
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Each consumer warpgroup computes whole tile_m x tile_n output tiles."""

  tile_m: int = 128
  tile_n: int = 128
  tile_k: int = 64
  stages: int = 4  # operand stages in the TMA ring that both consumers share (at least 2)
  epi_m: int = 64
  epi_n: int = 64
  slots: int = 2  # staging buffers per consumer for output slices in flight to HBM
  snake: int = 16  # grid_tile_width of the planar snake over output tiles (L2 reuse)
  release: bool = True  # keep one wgmma in flight: a stage is released one step late
  approx: bool = True  # hardware transcendentals (e.g. tanh.approx.f32) in the epilogue
  math: str = "gelu"  # "none": the epilogue without its arithmetic (for measuring only)

  def slices(self):
    """The epilogue's (rows, cols) slices of a tile, row-major."""
    return [
      (slice(i * self.epi_m, (i + 1) * self.epi_m), slice(j * self.epi_n, (j + 1) * self.epi_n))
      for i in range(self.tile_m // self.epi_m)
      for j in range(self.tile_n // self.epi_n)
    ]


def check(a, b, t: Tiling, extra=()):
  """(m, n, k) of a @ b, or a ValueError naming what does not tile."""
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


class Tile(NamedTuple):
  """What an epilogue hook sees: the consumer (0/1), the tile's row and column slices and
  column-tile index, the kernel's other refs (extra inputs, then outputs) and its scratch."""

  wg: jax.Array
  m_sl: object
  n_sl: object
  ni: jax.Array
  refs: tuple
  scratch: tuple


def smem_transforms(cols: int, dtype):
  """Tiling and swizzle for a shared-memory tile `cols` wide (TMA and wgmma layouts)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu

  bits = jnp.dtype(dtype).itemsize * 8
  swz = plgpu.find_swizzle(cols * bits)
  return (plgpu.TilingTransform((8, swz * 8 // bits)), plgpu.SwizzleTransform(swz))


def kernel(
  m: int,
  n: int,
  k: int,
  dtype,
  t: Tiling,
  out_type,
  finish: Callable,
  start: Callable | None = None,
  scratch: tuple = (),
):
  """The pallas kernel (a @ b, *extra inputs) -> out_type with this epilogue."""
  from jax import lax
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu

  in_tf = smem_transforms(t.tile_k, dtype)
  m_iters, n_iters, k_iters = m // t.tile_m, n // t.tile_n, k // t.tile_k
  tiles, S = m_iters * n_iters, min(t.stages, 2 * k_iters)
  # At most one CTA per SM; in interpret mode (CPU) 2, so tests reach CTAs of several tiles.
  num_sms = getattr(jax.devices()[0], "core_count", 2) if jax.default_backend() == "gpu" else 2
  G = min(num_sms, tiles)

  def body(a_gmem, b_gmem, *refs):
    def scope(a_smem, b_smem, a_bar, b_bar, consumed, *extra):
      wg, cta = lax.axis_index("wg"), lax.axis_index("cta")
      n_local = (tiles - cta + G - 1) // G  # this CTA's tiles: cta + j G, j < n_local

      def where(j):
        mi, ni = plgpu.planar_snake(cta + j * G, (m_iters, n_iters), 1, t.snake)
        return pl.ds(mi * t.tile_m, t.tile_m), pl.ds(ni * t.tile_n, t.tile_n), ni

      @pl.when(wg < 2)
      def _consumer():
        plgpu.set_max_registers(232, action="increase")

        @pl.loop(0, (n_local - wg + 1) // 2)
        def _tile(i):
          j = wg + 2 * i
          tile = Tile(wg, *where(j), refs, extra)
          if start is not None:
            start(tile)

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
                prev = lax.rem(step + S - 1, S)
                pl.when(kk > 0)(lambda: plgpu.barrier_arrive(consumed.at[prev]))
              else:
                plgpu.wgmma_wait(0)
                plgpu.barrier_arrive(consumed.at[slot])

            if t.release:
              plgpu.wgmma_wait(0)
              plgpu.barrier_arrive(consumed.at[lax.rem(j * k_iters + k_iters - 1, S)])
            return acc_ref[...]

          finish(tile, pl.run_scoped(mainloop, plgpu.ACC((t.tile_m, t.tile_n), jnp.float32)))

        plgpu.wait_smem_to_gmem(0, wait_read_only=True)

      @pl.when(wg == 2)
      def _producer():
        plgpu.set_max_registers(40, action="decrease")

        @pl.loop(0, n_local)
        def _tile(j):
          w = lax.rem(j, 2)  # the consumer of tile j: its own barriers, so phases stay in step
          m_sl, n_sl, _ = where(j)

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
      plgpu.Barrier(num_barriers=2 * S),  # A stage loaded, per (consumer, stage)
      plgpu.Barrier(num_barriers=2 * S),  # B stage loaded
      plgpu.Barrier(num_barriers=S),  # stage released
      *scratch,
      collective_axes="wg",
    )

  return plgpu.kernel(
    body,
    out_type=out_type,
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
      f"this jax ({jax.__version__}) has no Mosaic GPU interpret mode: off GPU use the xla "
      "implementation (model.kernels.mlp / model.kernels.qkv = 'xla')"
    ) from e
  return InterpretGPUParams()
