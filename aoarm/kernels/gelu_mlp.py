"""The MLP's two GELU matmuls with the GELU in the matmul's epilogue (Mosaic GPU, Hopper).

XLA runs `gelu(x @ w_in)` as a cuBLAS GEMM followed by an elementwise pass over the B x L x F
pre-activation (read it, write the activation), and the backward's `(d_act) * gelu'(pre)` as one
more pass after the GEMM `d_y @ w_out^T` (read both, write the result). Here both elementwise
steps run in the GEMM's epilogue, on the float32 accumulator in registers:

- `matmul_gelu(x, w)`: one kernel writes pre = x @ w and act = gelu(pre);
- `matmul_dgelu(g, w_t, pre)`: one kernel writes (g @ w_t) * gelu'(pre), with pre's tile fetched
  into shared memory while the tile's matmul runs.

The matmul is `kernels.hopper_matmul`'s (persistent, warp-specialised, two consumer warpgroups
taking whole output tiles in turn). Hopper (sm_90) only; the model takes it through
`model.kernels.mlp` (`auto`: a single Hopper GPU; `aoarm.kernels`).
"""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from aoarm.infra import sharding
from aoarm.kernels import hopper_matmul
from aoarm.kernels.gelu_math import GELU_A3 as A3
from aoarm.kernels.gelu_math import GELU_C as C
from aoarm.kernels.gelu_math import gelu_derivative


def gelu_tanh(x):
  """The same GELU through tanh, which `approx` maps to one hardware instruction."""
  return 0.5 * x * (1.0 + jnp.tanh(C * (x + A3 * x * x * x)))


def gelu_f32(x):
  """tanh-approximate GELU (= `nn.gelu`) written with exp: 0.5 (1 + tanh(u)) = sigmoid(2u)."""
  u = C * (x + A3 * x * x * x)
  return x / (1.0 + jnp.exp(-2.0 * u))


def dgelu_f32(x):
  """Its derivative: s + 2 x s (1 - s) u', s = sigmoid(2u) (equal to `gelu_derivative`)."""
  u = C * (x + A3 * x * x * x)
  s = 1.0 / (1.0 + jnp.exp(-2.0 * u))
  return s + 2.0 * x * s * (1.0 - s) * (C * (1.0 + 3.0 * A3 * x * x))


Tiling = hopper_matmul.Tiling


def _build(mode: str, m: int, n: int, k: int, dtype, t: Tiling):
  """The ping-pong kernel with the epilogue of `mode`: 'gelu' (outputs pre, act) or 'dgelu'
  (extra input pre, output d)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu

  if t.math == "none":
    act_fn, dact_fn = (lambda x: x), (lambda x: x)
  elif t.approx:
    act_fn, dact_fn = gelu_tanh, gelu_derivative
  else:
    act_fn, dact_fn = gelu_f32, dgelu_f32
  epis = t.slices()
  out_tf = hopper_matmul.smem_transforms(t.epi_n, dtype)

  def finish_gelu(tile, acc):
    """Per slice: wait until the slot's last stores have read it, then pre and act in."""
    (pre_gmem, act_gmem), (out_smem,) = tile.refs, tile.scratch
    wg = tile.wg
    for e, (ms, ns) in enumerate(epis):
      slot = e % t.slots
      plgpu.wait_smem_to_gmem(2 * (t.slots - 1), wait_read_only=True)
      pre = acc[ms, ns].astype(dtype)
      out_smem[wg, slot, 0] = pre
      out_smem[wg, slot, 1] = act_fn(pre.astype(jnp.float32)).astype(dtype)
      plgpu.commit_smem()
      dst = (tile.m_sl, tile.n_sl)
      plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 0], pre_gmem.at[dst].at[ms, ns])
      plgpu.copy_smem_to_gmem(out_smem.at[wg, slot, 1], act_gmem.at[dst].at[ms, ns])

  def start_dgelu(tile):
    """pre's first slice loads while the main loop runs."""
    (pre_gmem, _), (out_smem, bar) = tile.refs, tile.scratch
    plgpu.wait_smem_to_gmem(0, wait_read_only=True)
    src = pre_gmem.at[tile.m_sl, tile.n_sl].at[epis[0]]
    plgpu.copy_gmem_to_smem(src, out_smem.at[tile.wg, 0], bar.at[2 * tile.wg])

  def finish_dgelu(tile, acc):
    """Per slice: the next slice of pre loads (once the last store has read its slot), then
    this slice's product goes out through the slot pre came in by."""
    (pre_gmem, d_gmem), (out_smem, bar) = tile.refs, tile.scratch
    wg, src = tile.wg, pre_gmem.at[tile.m_sl, tile.n_sl]
    for e, (ms, ns) in enumerate(epis):
      slot = e % 2
      if e + 1 < len(epis):
        plgpu.wait_smem_to_gmem(0, wait_read_only=True)
        nxt = src.at[epis[e + 1]]
        plgpu.copy_gmem_to_smem(nxt, out_smem.at[wg, 1 - slot], bar.at[2 * wg + 1 - slot])
      plgpu.barrier_wait(bar.at[2 * wg + slot])
      p = out_smem[wg, slot].astype(jnp.float32)
      out_smem[wg, slot] = (acc[ms, ns] * dact_fn(p)).astype(dtype)
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(out_smem.at[wg, slot], d_gmem.at[tile.m_sl, tile.n_sl].at[ms, ns])

  out = jax.ShapeDtypeStruct((m, n), dtype)
  if mode == "gelu":  # per consumer: `slots` (pre, act) slice pairs in flight to HBM
    smem = plgpu.SMEM((2, t.slots, 2, t.epi_m, t.epi_n), dtype, transforms=out_tf)
    return hopper_matmul.kernel(m, n, k, dtype, t, (out, out), finish_gelu, scratch=(smem,))
  # per consumer: two slices, pre's next slice loading while the last result stores
  smem = plgpu.SMEM((2, 2, t.epi_m, t.epi_n), dtype, transforms=out_tf)
  bar = plgpu.Barrier(num_barriers=4)  # pre slice loaded, per (consumer, slot)
  return hopper_matmul.kernel(m, n, k, dtype, t, out, finish_dgelu, start_dgelu, (smem, bar))


def matmul_gelu(x_MxK, w_KxN, tiling: Tiling | None = None):
  """(pre, act): pre = x @ w in x's dtype (float32 accumulation), act = gelu(pre)."""
  tiling = tiling or tilings(w_KxN.shape[1])[0]
  m, n, k = hopper_matmul.check(x_MxK, w_KxN, tiling)
  return _build("gelu", m, n, k, x_MxK.dtype, tiling)(x_MxK, w_KxN)


def matmul_dgelu(g_MxK, w_KxN, pre_MxN, tiling: Tiling | None = None):
  """(g @ w) * gelu'(pre) in g's dtype: the MLP's backward through the GELU."""
  tiling = tiling or tilings(w_KxN.shape[1])[1]
  m, n, k = hopper_matmul.check(g_MxK, w_KxN, tiling, (pre_MxN,))
  return _build("dgelu", m, n, k, g_MxK.dtype, tiling)(g_MxK, w_KxN, pre_MxN)


# The tilings measured fastest on the H100 at the GPT-2 MLP (32768 x 768 x 3072): 128 x 192 tiles
# (forward 253-260 us, backward 278-285 over three calls); where the MLP width is not a multiple
# of 192, 128 x 128 tiles, the backward with a deeper ring (308 and 295 us):
# `python benchmarks/gelu_matmul_kernel.py --sweep`, results/h100/gelu_matmul_kernel_pingpong.txt.
FWD = BWD = Tiling(tile_n=192)
FWD_128, BWD_128 = Tiling(), Tiling(stages=6)


def tilings(mlp_dim: int) -> tuple[Tiling, Tiling]:
  """(forward, backward) tilings for an MLP of this width."""
  return (FWD, BWD) if mlp_dim % FWD.tile_n == 0 else (FWD_128, BWD_128)


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
