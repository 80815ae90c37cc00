"""Held-out evaluation (docs/objectives.md) over every window of a split.

AO variants: K random orders per window (seeded by the window's index, so results do not depend
on the batch size or mesh) and, separately, the identity order. `mdm`: K stratified masking rates
per window. Reports mean nats/token, bits/token, perplexity, token count and the standard error
across windows.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from aoarm import losses, models, orders
from aoarm.data import pipeline
from aoarm.infra import sharding
from aoarm.infra.errors import UserError

EVAL_SEED = 1234  # orders and masks of the evaluation (fixed: every run is scored alike)


def _window_keys(start, batch):
  idx = start + jnp.arange(batch)
  return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(EVAL_SEED), i))(idx)


# batches of an eval dispatched ahead of the device at most (no host sync per batch, bounded
# device memory for the batches waiting)
EVAL_IN_FLIGHT = 8


def eval_fn(placed, order: str, num_orders: int):
  """`make_eval_fn`'s function, made once per placed model, order and K: a periodic eval in
  training, or the random and identity orders of an eval, trace and compile once. With K > 1
  it also gives each order's (or masking rate's) NLL per window."""
  cache = placed.compiled
  key = ("eval", order, num_orders)
  if key not in cache:
    cache[key] = make_eval_fn(placed, order, num_orders, each=num_orders > 1)
  return cache[key]


def make_eval_fn(placed, order: str, num_orders: int, each: bool = False):
  """jit(params, x_BxL, first_window_index) -> per-window mean NLL (nats/token) over the K
  orders (or masking rates), shape (B,); with `each`, also each order's own, shape (B, K)."""
  model, mesh, traits = placed.model, placed.mesh, placed.traits
  V, K = placed.mcfg.vocab_size, num_orders

  def per_window(params, x_BxL, start):
    B, L = x_BxL.shape
    keys_BxK = jax.vmap(lambda k: jax.random.split(k, K))(_window_keys(start, B))

    def one(k):  # the k-th order (or masking rate) of every window: its NLL, shape (B,)
      r_B = keys_BxK[:, k]
      if not traits.has_order:
        u_B = jax.vmap(jax.random.uniform)(r_B)
        lam_B = (k + 1.0 - u_B) / K  # stratified over the K samples of each window
        mask_keys_B = jax.vmap(lambda r: jax.random.fold_in(r, 1))(r_B)
        m_BxL = losses.row_masks(mask_keys_B, L, lam_B)
        return losses.masked_elbo(model.apply, params, x_BxL, m_BxL, lam_B, V)
      if order == "l2r" or not traits.random_orders:
        sigma = orders.identity_orders(B, L)
      else:
        sigma = orders.random_orders_per_row(r_B, L)
      return losses.any_order_nll(model.apply, params, x_BxL, sigma).mean(axis=1)

    def add_one(k, carry):
      total_B, each_BxK = carry
      v_B = one(k).astype(total_B.dtype)
      return total_B + v_B, each_BxK.at[:, k].set(v_B) if each else each_BxK

    # a loop, not K copies of the model: the compile time does not grow with K (unrolled, mdm's
    # 8 masking rates took minutes to compile on a GPU shared by other runs)
    init = (jnp.zeros((B,), jnp.float32), jnp.zeros((B, K if each else 0), jnp.float32))
    total_B, each_BxK = jax.lax.fori_loop(0, K, add_one, init)
    return (total_B / K, each_BxK) if each else total_B / K

  def fn(params, x_BxL, start):
    with sharding.activate(mesh, placed.rules):
      return per_window(params, x_BxL, start)

  bs = sharding.batch_sharding(mesh)
  return jax.jit(fn, in_shardings=(None, bs, None), out_shardings=sharding.replicated(mesh))


def evaluate(placed, params, tokens, ecfg, order: str, split: str, true_nll=None) -> dict:
  """Mean NLL of the windows of `tokens` (a split) in `order` (see `orders_to_report`) for the
  model placed on its mesh (`placed_model.PlacedModel`), with its standard error."""
  return evaluate_windows(placed, params, tokens, ecfg, order, split, true_nll)[0]


def evaluate_windows(placed, params, tokens, ecfg, order, split, true_nll=None):
  """(summary, nll_W, nll_WxK): `evaluate`'s summary, the NLL (nats/token) of each scored window
  (the mean over its K orders or masking rates), in window order (window w is
  tokens[w*L:(w+1)*L], its orders seeded by (EVAL_SEED, w)): two runs of one L scored on the
  same split pair window by window; and with K > 1 each order's (mdm: each stratified rate's,
  k-th of K) NLL per window, else None."""
  mcfg, mesh = placed.mcfg, placed.mesh
  dp = sharding.data_parallel_size(mesh)
  if ecfg.batch_size % dp:
    raise UserError(
      f"eval.batch_size={ecfg.batch_size} is not divisible by the {dp} data-parallel devices"
    )
  K = 1 if order == "l2r" else ecfg.num_orders
  fn = eval_fn(placed, order, K)
  per_window, weights, inflight = [], [], []
  start = 0
  for x, w in pipeline.eval_batches(tokens, mcfg.seq_len, ecfg.batch_size, ecfg.max_windows):
    out = fn(params, sharding.global_batch_from_full(x, mesh), jnp.int32(start))
    per_window.append(out)  # stays on the device: the host never waits on a batch
    inflight.append(out)
    if len(inflight) > EVAL_IN_FLIGHT:
      jax.block_until_ready(inflight.pop(0))
    weights.append(w)
    start += len(x)
  per_window = jax.device_get(per_window)
  keep = np.concatenate(weights) > 0
  nll_WxK = None
  if K > 1:  # (mean, each) per batch
    nll_WxK = np.concatenate([np.asarray(e) for _, e in per_window])[keep].astype(np.float64)
    per_window = [m for m, _ in per_window]
  nll_W = np.concatenate([np.asarray(v) for v in per_window])[keep].astype(np.float64)
  n = len(nll_W)
  mean = float(nll_W.mean())
  stderr = float(nll_W.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
  out = {
    "nll_per_token": mean,
    "bits_per_token": mean / math.log(2),
    "perplexity": math.exp(mean),
    "num_tokens": int(n * mcfg.seq_len),
    "num_windows": int(n),
    "stderr": stderr,
    "stderr_bits": stderr / math.log(2),
    "split": split,
    "order": order,
    "num_orders": K,
    "variant": mcfg.variant,
    "seq_len": mcfg.seq_len,
    "eval_seed": EVAL_SEED,
  }
  if true_nll is not None:
    out["true_nll_per_token"] = float(true_nll(mcfg.seq_len))
  return out, nll_W, nll_WxK


def orders_to_report(mcfg, ecfg) -> list[str]:
  """The primary estimate first: random orders (AO variants), the identity (ar), or the ELBO
  over K stratified masking rates (mdm, compared directly with random orders,
  docs/objectives.md)."""
  traits = models.traits(mcfg.variant)
  if not traits.has_order:
    return ["elbo"]
  if not traits.random_orders:
    return ["l2r"]
  return ["random", "l2r"] if ecfg.l2r else ["random"]
