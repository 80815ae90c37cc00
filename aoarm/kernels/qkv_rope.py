"""Attention's q/k/v projection with RoPE in the matmul's epilogue (Mosaic GPU, Hopper).

XLA runs `x @ [wq wk wv]` as one GEMM into B x L x 3 x H x K, then a pass that slices q and k
out of it and rotates them (RoPE, docs/model.md), and one that copies v out (cuDNN attention takes
contiguous operands): 121 us per layer at the GPT-2 shape, batch 32, on an H100. Here one
`kernels.hopper_matmul` kernel writes q and k already rotated, and v, each its own contiguous
B x L x H x K array. The rotation uses cos and sin tables of the rows' position ids, computed as
`rope._rotate` computes them (float32 angles), from the bf16-rounded product, as XLA's path
does.

The backward is XLA's: q's and k's cotangents rotated back (the transpose of a rotation is the
rotation by minus the angle), concatenated with v's, then the two matmuls — what autodiff of
the XLA path computes. Only rotary position ids per row (not per head), with no generation-step
dims (`rope.order_dims` 0), take the kernel: ar, mdm, sigma_gpt, two_stream's content stream.
"""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from aoarm import rope
from aoarm.infra import sharding
from aoarm.kernels import hopper_matmul

# 128 x 192 output tiles (3 heads of 64 each), as the MLP's kernels measured best at this width.
TILING = hopper_matmul.Tiling(tile_n=192, slots=2)


def tables(pos_M: jax.Array, head_dim: int, base: float) -> tuple[jax.Array, jax.Array]:
  """cos and sin (M x head_dim/2, float32), as `rope._rotate` rotates by."""
  return rope.cos_sin(pos_M, head_dim, base)


def _build(m: int, d: int, hk: int, head_dim: int, dtype, t):
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import mosaic_gpu as plgpu

  half, per = head_dim // 2, hk // t.tile_n  # column tiles per region (q, k, v)
  heads = t.tile_n // head_dim
  rows = [slice(i * t.epi_m, (i + 1) * t.epi_m) for i in range(t.tile_m // t.epi_m)]
  out_tf = hopper_matmul.smem_transforms(half, dtype)
  tab_tf = hopper_matmul.smem_transforms(half, jnp.float32)

  def load_tables(tile, region, r):
    """Rows r of the tile's cos and sin tables (q's or k's) into this consumer's buffers."""
    (cq, sq, ck, sk, *_), (_, tab, bar) = tile.refs, tile.scratch
    for i, (c, s) in enumerate(((cq, sq), (ck, sk))):

      @pl.when(region == i)
      def _(c=c, s=s):
        for z, src in enumerate((c, s)):
          dst = tab.at[tile.wg, z]
          plgpu.copy_gmem_to_smem(src.at[tile.m_sl].at[rows[r]], dst, bar.at[2 * tile.wg + z])

  def start(tile):
    region = tile.ni // per
    pl.when(region < 2)(lambda: load_tables(tile, region, 0))

  def finish(tile, acc):
    (*_, q_out, k_out, v_out), (stage, tab, bar) = tile.refs, tile.scratch
    region, wg = tile.ni // per, tile.wg
    col = pl.ds((tile.ni - region * per) * t.tile_n, t.tile_n)
    e = 0
    for r, ms in enumerate(rows):
      if r > 0:
        pl.when(region < 2)(lambda r=r: load_tables(tile, region, r))
      if t.math != "none":

        @pl.when(region < 2)
        def _():
          plgpu.barrier_wait(bar.at[2 * wg])
          plgpu.barrier_wait(bar.at[2 * wg + 1])

      for h in range(heads):
        slot = e % t.slots
        e += 1
        x = acc[ms, h * head_dim : (h + 1) * head_dim].astype(dtype).astype(jnp.float32)
        lo, hi = x[:, :half], x[:, half:]
        plgpu.wait_smem_to_gmem(2 * (t.slots - 1), wait_read_only=True)  # slot is free

        @pl.when(region < 2)
        def _rotated(lo=lo, hi=hi, slot=slot):
          c, s = tab[wg, 0], tab[wg, 1]
          stage[wg, slot, 0] = (lo * c - hi * s).astype(dtype)
          stage[wg, slot, 1] = (hi * c + lo * s).astype(dtype)

        @pl.when(region == 2)
        def _plain(lo=lo, hi=hi, slot=slot):
          stage[wg, slot, 0] = lo.astype(dtype)
          stage[wg, slot, 1] = hi.astype(dtype)

        plgpu.commit_smem()
        for i, out in enumerate((q_out, k_out, v_out)):

          @pl.when(region == i)
          def _store(out=out, slot=slot, h=h, ms=ms):
            dst = out.at[tile.m_sl, col].at[ms]
            for z in range(2):
              cols = pl.ds(h * head_dim + z * half, half)
              plgpu.copy_smem_to_gmem(stage.at[wg, slot, z], dst.at[:, cols])

  out = jax.ShapeDtypeStruct((m, hk), dtype)
  scratch = (
    plgpu.SMEM((2, t.slots, 2, t.epi_m, half), dtype, transforms=out_tf),  # output halves
    plgpu.SMEM((2, 2, t.epi_m, half), jnp.float32, transforms=tab_tf),  # cos, sin rows
    plgpu.Barrier(num_barriers=4),  # table rows loaded, per (consumer, cos/sin)
  )
  return hopper_matmul.kernel(m, 3 * hk, d, dtype, t, (out, out, out), finish, start, scratch)


def unfit(m: int, d: int, hk: int, head_dim: int, dtype, t=TILING) -> str | None:
  """Why an M x D @ D x 3HK projection cannot take the kernel (or None)."""
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
    return f"compute dtype {jnp.dtype(dtype).name} (the kernel takes bfloat16 or float16)"
  if head_dim % 64 or t.tile_n % head_dim:  # rotary halves 32 wide: what is verified
    return f"head_dim={head_dim} (the kernel takes multiples of 64 dividing {t.tile_n})"
  for name, size, tile in (
    ("rows", m, t.tile_m),
    ("heads x head_dim", hk, t.tile_n),
    ("d_model", d, t.tile_k),
  ):
    if size % tile:
      return f"{name}={size} is not a multiple of {tile}"
  return None


def _fwd(x, w, cq, sq, ck, sk, head_dim, t):
  m, d = x.shape
  hk = w.shape[1] // 3
  why = unfit(m, d, hk, head_dim, x.dtype, t)
  if why is not None:
    raise ValueError(f"the q/k/v kernel cannot run this projection: {why}")
  hopper_matmul.check(x, w, t)
  q, k, v = _build(m, d, hk, head_dim, x.dtype, t)(x, w, cq, sq, ck, sk)
  return (q, k, v), (x, w, cq, sq, ck, sk)


def _unrotate(g, c, s, head_dim):
  """The rotation's transpose (by minus the angle), in float32, back to g's dtype."""
  m, hk = g.shape
  g2 = g.astype(jnp.float32).reshape(m, hk // head_dim, 2, head_dim // 2)
  out = rope.rotate_halves(g2, c[:, None, None, :], -s[:, None, None, :])
  return out.reshape(m, hk).astype(g.dtype)


def _bwd(head_dim, t, res, cts):
  x, w, cq, sq, ck, sk = res
  dq, dk, dv = cts
  dy = jnp.concatenate([_unrotate(dq, cq, sq, head_dim), _unrotate(dk, ck, sk, head_dim), dv], -1)
  # One concatenation pass, then cuBLAS: without the barrier XLA fused it into both matmuls'
  # operands (Triton), 984 against 825 us for the projection's forward and backward (H100).
  dy = jax.lax.optimization_barrier(dy)
  dw = jnp.dot(x.T, dy, preferred_element_type=jnp.float32).astype(w.dtype)
  return jnp.dot(dy, w.T).astype(x.dtype), dw, None, None, None, None


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _project(x, w, cq, sq, ck, sk, head_dim, t):
  return _fwd(x, w, cq, sq, ck, sk, head_dim, t)[0]


_project.defvjp(
  lambda x, w, cq, sq, ck, sk, head_dim, t: _fwd(x, w, cq, sq, ck, sk, head_dim, t), _bwd
)

ROWS = P(sharding.BATCH_AXES, None)


def project(x_BxLxD, w_DxN, q_pos, k_pos, head_dim: int, base: float, t=TILING):
  """q and k rotated by their position ids (B x L), and v: each B x L x H x K, from x and the
  stacked D x 3HK kernel [wq | wk | wv]. Under a mesh of several devices, each device runs the
  kernel on its rows (`sharding.per_device`)."""
  *lead, d = x_BxLxD.shape
  hk = w_DxN.shape[1] // 3
  cq, sq = tables(jnp.broadcast_to(q_pos, lead).reshape(-1), head_dim, base)
  if k_pos is q_pos:
    ck, sk = cq, sq
  else:
    ck, sk = tables(jnp.broadcast_to(k_pos, lead).reshape(-1), head_dim, base)
  x = x_BxLxD.reshape(-1, d)
  args = (x, w_DxN, *jax.lax.stop_gradient((cq, sq, ck, sk)))
  f = lambda *a: _project(*a, head_dim, t)  # noqa: E731
  outs = sharding.per_device(f, args, (ROWS, P(None, None), ROWS, ROWS, ROWS, ROWS), (ROWS,) * 3)
  return [o.reshape(*lead, hk // head_dim, head_dim) for o in outs]
