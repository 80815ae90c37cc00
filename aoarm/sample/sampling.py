"""KV-cached any-order sampling (docs/sampling.md), under jit with `jax.lax` loops and static
shapes. The sampler is the variant's family (`Traits.sampler`, `models.decoding`):

- `query` (two_stream): the content stream's keys/values are cached; each step runs query rows
  for k target positions against the cache, samples them, and appends their content rows.
  Orders: random, l2r, given (a full order), adaptive (score every open position, commit the k
  most confident). k = 1 is exact ancestral sampling.
- `next_row` (ar, decoupled_rope, sigma_gpt): one row per step along a pre-drawn order (a row's
  deeper keys/values depend on its target, so the order is fixed before the row is computed).
- `unmask` (mdm): S denoising steps over all rows (the baseline).

Conditioning: `given` (position, token) pairs enter first (cache prefill); a left-to-right model
can only force them when its order reaches them. Every sampler returns tokens (original layout),
the order (positions in generation order) and the model's untempered log-prob of every token in
generation order, so cached log-probs can be checked against the full forward.
"""

import contextlib
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from aoarm import models, orders
from aoarm.infra import sharding
from aoarm.models.decoding import init_cache
from aoarm.models.inputs import Rows
from aoarm.sample.sample_spec import SampleSpec


def precision_scope(precision: str):
  """64-bit JAX around float64 draws (`sample.precision`), switched back on exit so that callers
  and later work in the process are unchanged; nothing for float32. The model stays as trained."""
  return jax.enable_x64(True) if precision == "float64" else contextlib.nullcontext()


def greedy(temperature) -> bool:
  """Temperature 0 (static): argmax instead of a draw. A traced temperature is never greedy."""
  return isinstance(temperature, (int, float)) and temperature == 0


def pick(logits_BxNxV, rng, temperature, top_p: float, precision: str = "float32"):
  """Sample (or argmax at temperature 0) with nucleus filtering. `temperature` may be traced.
  `precision="float64"`: the tempered logits and the Gumbel noise of the draw are float64 (needs
  `jax_enable_x64`); float32 noise cannot exceed ~16.6, which trims the draw's tail."""
  if greedy(temperature):
    return jnp.argmax(logits_BxNxV, axis=-1).astype(jnp.int32)
  dt = jnp.dtype(precision)
  logits = logits_BxNxV.astype(dt) / jnp.asarray(temperature, dt)
  if top_p < 1.0:
    probs = jax.nn.softmax(logits, axis=-1)
    sorted_p = jnp.sort(probs, axis=-1)[..., ::-1]
    cum = jnp.cumsum(sorted_p, axis=-1)
    # smallest set whose mass reaches top_p: keep probs >= the cutoff probability
    cutoff_idx = jnp.sum(cum < top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_p, jnp.minimum(cutoff_idx, sorted_p.shape[-1] - 1), -1)
    logits = jnp.where(probs >= cutoff, logits, -jnp.inf)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def _pick(logits_BxNxV, rng, spec: SampleSpec):
  return pick(logits_BxNxV, rng, spec.temperature, spec.top_p, spec.precision)


def logprob(logits_BxNxV, tok_BxN):
  return jnp.take_along_axis(jax.nn.log_softmax(logits_BxNxV, -1), tok_BxN[..., None], -1)[..., 0]


def draw_order(spec: SampleSpec, rng, batch: int) -> jax.Array:
  """Orders B x L: given positions first (in the order listed), then the rest."""
  L = spec.length
  if spec.order == "given":
    return jnp.broadcast_to(jnp.asarray(spec.order_positions, jnp.int32), (batch, L))
  given = [p for p, _ in spec.given]
  rest = np.array([p for p in range(L) if p not in set(given)], np.int32)
  if spec.order in ("l2r", "adaptive") or len(rest) == 0:
    rest_BxR = jnp.broadcast_to(jnp.asarray(rest), (batch, len(rest)))
  else:
    keys = jax.random.split(rng, batch)
    rest_BxR = jax.vmap(lambda r: jax.random.permutation(r, jnp.asarray(rest)))(keys)
  head = jnp.broadcast_to(jnp.asarray(given, jnp.int32), (batch, len(given)))
  return jnp.concatenate([head, rest_BxR.astype(jnp.int32)], axis=1)


def _given_table(spec: SampleSpec) -> np.ndarray:
  """Per position: the given token, or -1."""
  table = np.full(spec.length, -1, np.int32)
  for p, t in spec.given:
    table[p] = t
  return table


def _forced(spec: SampleSpec, sigma_BxL):
  """Per step (generation order): is the token given, and which."""
  tok_BxL = jnp.asarray(_given_table(spec))[sigma_BxL]
  return tok_BxL >= 0, jnp.maximum(tok_BxL, 0)


def _f32(fn):
  """A model call whose logits (first output, or the output) come back as float32."""

  def call(*a):
    out = fn(*a)
    if isinstance(out, tuple):
      return (out[0].astype(jnp.float32), *out[1:])
    return out.astype(jnp.float32)

  return call


def _rows(prev_BxN, own_BxN, tgt_BxN, first_step):
  N = prev_BxN.shape[1]
  step = jnp.broadcast_to(first_step - 1 + jnp.arange(N), own_BxN.shape)
  return Rows(own=own_BxN, tgt=tgt_BxN, step=step)


def sample_single_stream(model, params, mcfg, spec: SampleSpec, rng, batch: int):
  """The `next_row` sampler: one row per step along a pre-drawn order."""
  L, V = spec.length, mcfg.vocab_size
  traits = models.traits(mcfg.variant)
  r_order, r_tok = jax.random.split(rng)
  if not traits.random_orders:
    spec = dataclasses.replace(spec, order="l2r", given=tuple(sorted(spec.given)))
    sigma = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (batch, L))
  else:
    sigma = draw_order(spec, r_order, batch)
  forced_BxL, forced_tok_BxL = _forced(spec, sigma)
  # P leading steps are all given: their rows (plus the first open row) run as one prefill
  P = spec.prefix_steps(traits)
  apply = _f32(lambda *a: model.apply({"params": params}, *a, method=model.decode))
  cache = init_cache(mcfg, batch, L)
  n0 = min(P + 1, L)
  prev0 = jnp.concatenate([jnp.full((batch, 1), V, jnp.int32), forced_tok_BxL[:, : n0 - 1]], 1)
  own0 = jnp.concatenate([jnp.full((batch, 1), -1, jnp.int32), sigma[:, : n0 - 1]], 1)
  logits, cache = apply(prev0, _rows(prev0, own0, sigma[:, :n0], 0), cache, 0)
  tok0 = _pick(logits, jax.random.fold_in(r_tok, 0), spec)
  tok0 = jnp.where(forced_BxL[:, :n0], forced_tok_BxL[:, :n0], tok0)
  y = jnp.zeros((batch, L), jnp.int32).at[:, :n0].set(tok0)
  lp = jnp.zeros((batch, L), jnp.float32).at[:, :n0].set(logprob(logits, tok0))

  def body(t, carry):
    y, lp, cache = carry
    prev = jax.lax.dynamic_slice_in_dim(y, t - 1, 1, 1)
    own = jax.lax.dynamic_slice_in_dim(sigma, t - 1, 1, 1)
    tgt = jax.lax.dynamic_slice_in_dim(sigma, t, 1, 1)
    logits, cache = apply(prev, _rows(prev, own, tgt, t), cache, t)
    tok = _pick(logits, jax.random.fold_in(r_tok, t), spec)
    f = jax.lax.dynamic_slice_in_dim(forced_BxL, t, 1, 1)
    tok = jnp.where(f, jax.lax.dynamic_slice_in_dim(forced_tok_BxL, t, 1, 1), tok)
    y = jax.lax.dynamic_update_slice_in_dim(y, tok, t, 1)
    lp = jax.lax.dynamic_update_slice_in_dim(lp, logprob(logits, tok), t, 1)
    return y, lp, cache

  y, lp, _ = jax.lax.fori_loop(n0, L, body, (y, lp, cache), unroll=spec.unroll)
  return _result(y, sigma, lp, steps=L - n0 + 1)


def _result(y_BxL, sigma_BxL, lp_BxL, steps):
  return {
    "tokens": orders.unpermute(y_BxL, sigma_BxL),
    "order": sigma_BxL,
    "logprob": lp_BxL,
    "num_steps": steps,
  }


def sample_two_stream(model, params, mcfg, spec: SampleSpec, rng, batch: int):
  """Content-stream KV cache; k query rows per step (fixed or confidence-adaptive order).

  One fused pass per step: the previous step's k tokens enter the cache as content rows and,
  in the same pass, this step's query rows attend the cache including them."""
  L, V, k = spec.length, mcfg.vocab_size, spec.k
  r_order, r_tok = jax.random.split(rng)
  sigma = draw_order(spec, r_order, batch)
  P = len(spec.given)
  forced_BxL, forced_tok_BxL = _forced(spec, sigma)
  n_chunks = math.ceil((L - P) / k)
  width = P + n_chunks * k  # steps incl. padding past L in the last chunk
  step_fn = _f32(lambda *a: model.apply({"params": params}, *a, method=model.step))
  query = _f32(lambda *a: model.apply({"params": params}, *a, method=model.query))
  cache = init_cache(mcfg, batch, width + 1)
  order = jnp.zeros((batch, width), jnp.int32).at[:, :L].set(sigma)
  filled = jnp.zeros((batch, L), bool).at[jnp.arange(batch)[:, None], sigma[:, :P]].set(True)
  adaptive = spec.order == "adaptive"
  all_pos = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (batch, L))

  def choose(logits_q, start, order, filled, c):
    """Targets, their logits, tokens and validity for the chunk starting at step `start`."""
    if adaptive:
      temp = jnp.maximum(jnp.asarray(spec.temperature, jnp.float32), 1e-6)
      conf = jnp.max(jax.nn.log_softmax(logits_q / temp, -1), -1)
      conf_k, tgt = jax.lax.top_k(jnp.where(filled, -jnp.inf, conf), k)
      tgt = tgt.astype(jnp.int32)
      logits = jnp.take_along_axis(logits_q, tgt[..., None], 1)
      valid = conf_k > -jnp.inf
    else:
      tgt = jax.lax.dynamic_slice_in_dim(order, start, k, 1)
      logits = logits_q
      valid = jnp.broadcast_to(start + jnp.arange(k) < L, tgt.shape)
    tok = _pick(logits, jax.random.fold_in(r_tok, c), spec)
    return tgt, logits, tok, valid

  def targets(order, start):
    return all_pos if adaptive else jax.lax.dynamic_slice_in_dim(order, start, k, 1)

  def commit(c, tgt, logits, tok, valid, y, order, lp, filled):
    start = P + c * k
    y = jax.lax.dynamic_update_slice_in_dim(y, tok, start, 1)
    order = jax.lax.dynamic_update_slice_in_dim(order, tgt, start, 1)
    lp = jax.lax.dynamic_update_slice_in_dim(lp, logprob(logits, tok), start, 1)
    filled = filled | jnp.zeros_like(filled).at[jnp.arange(batch)[:, None], tgt].set(valid)
    return y, order, lp, filled

  # Step 0: BOS and the given tokens enter the cache; the first chunk's queries see them all.
  prev0 = jnp.concatenate([jnp.full((batch, 1), V, jnp.int32), forced_tok_BxL[:, :P]], 1)
  own0 = jnp.concatenate([jnp.full((batch, 1), -1, jnp.int32), sigma[:, :P]], 1)
  y = jnp.zeros((batch, width), jnp.int32).at[:, :P].set(forced_tok_BxL[:, :P])
  lp = jnp.zeros((batch, width), jnp.float32)
  if n_chunks == 0:
    return _result(y[:, :L], order[:, :L], lp[:, :L], steps=0)
  logits_q, cache = step_fn(prev0, _rows(prev0, own0, own0, 0), targets(order, P), cache, 0)
  if P:  # score the given tokens too (their log-probs under the model, in order)
    lp = lp.at[:, :P].set(_score_prefix(query, sigma[:, :P], forced_tok_BxL[:, :P], cache))
  tgt, logits, tok, valid = choose(logits_q, P, order, filled, 0)
  y, order, lp, filled = commit(0, tgt, logits, tok, valid, y, order, lp, filled)

  def body(c, carry):
    y, order, lp, filled, cache, prev_tok, prev_tgt = carry
    start = P + c * k  # the cache holds start + 1 - k rows; the previous chunk's k join now
    rows = _rows(prev_tok, prev_tgt, prev_tgt, start + 1 - k)
    logits_q, cache = step_fn(prev_tok, rows, targets(order, start), cache, start + 1 - k)
    tgt, logits, tok, valid = choose(logits_q, start, order, filled, c)
    y, order, lp, filled = commit(c, tgt, logits, tok, valid, y, order, lp, filled)
    return y, order, lp, filled, cache, tok, tgt

  carry = (y, order, lp, filled, cache, tok, tgt)
  y, order, lp, *_ = jax.lax.fori_loop(1, n_chunks, body, carry, unroll=spec.unroll)
  return _result(y[:, :L], order[:, :L], lp[:, :L], steps=n_chunks)


def _score_prefix(query, pos_BxP, tok_BxP, cache):
  """Log-probs of the given prefix under the model: query row j sees cache rows [0, j]."""
  P = pos_BxP.shape[1]

  def one(j):
    logits = query(jax.lax.dynamic_slice_in_dim(pos_BxP, j, 1, 1), cache, j + 1)
    return logprob(logits, jax.lax.dynamic_slice_in_dim(tok_BxP, j, 1, 1))[:, 0]

  return jax.vmap(one, out_axes=1)(jnp.arange(P))


def sample_mdm(model, params, mcfg, spec: SampleSpec, rng, batch: int):
  """MDLM ancestral sampler: S steps from t=1 to 0; a masked token is revealed at step s with
  probability (t_s - t_{s+1}) / t_s; revealed tokens stay. At temperature 0 the same expected
  number is revealed, the most confident first (deterministic)."""
  L, V = spec.length, mcfg.vocab_size
  S = spec.mdm_steps or L
  table = _given_table(spec)
  z = jnp.broadcast_to(jnp.where(jnp.asarray(table) >= 0, jnp.asarray(table), V), (batch, L))
  when = jnp.where(z == V, S, -1).astype(jnp.int32)  # reveal step (-1: given)
  lp = jnp.zeros((batch, L), jnp.float32)

  def body(s, carry):
    z, when, lp = carry
    r1, r2 = jax.random.split(jax.random.fold_in(rng, s))
    logits = model.apply({"params": params}, z).astype(jnp.float32)
    t_now, t_next = 1.0 - s / S, 1.0 - (s + 1) / S
    masked = z == V
    if greedy(spec.temperature):  # greedy: reveal the most confident masked positions, as many
      conf = jnp.where(masked, jnp.max(jax.nn.log_softmax(logits, -1), -1), -jnp.inf)
      n_B = jnp.ceil(masked.sum(1) * (t_now - t_next) / t_now)  # as revealed in expectation
      rank = jnp.argsort(jnp.argsort(-conf, axis=1), axis=1)
      reveal = masked & (rank < n_B[:, None])
    else:
      u = jax.random.uniform(r1, z.shape, jnp.dtype(spec.precision))
      reveal = masked & (u < (t_now - t_next) / t_now)
    tok = _pick(logits, r2, spec)
    lp = jnp.where(reveal, logprob(logits, tok), lp)
    when = jnp.where(reveal, s, when)
    return jnp.where(reveal, tok, z), when, lp

  z, when, lp = jax.lax.fori_loop(0, S, body, (z, when, lp), unroll=spec.unroll)
  sigma = jnp.argsort(when * L + jnp.arange(L), axis=1).astype(jnp.int32)
  return {"tokens": z, "order": sigma, "logprob": jnp.take_along_axis(lp, sigma, 1), "num_steps": S}


def sample(model, params, mcfg, spec: SampleSpec, rng, batch: int):
  """Dispatch on the variant's sampler family. Call under jax.jit with spec static, through
  `make_sampler` (which checks the spec once)."""
  return SAMPLERS[models.traits(mcfg.variant).sampler](model, params, mcfg, spec, rng, batch)


SAMPLERS = {"next_row": sample_single_stream, "query": sample_two_stream, "unmask": sample_mdm}


def make_sampler(model, mcfg, spec: SampleSpec, batch: int, rules=(), mesh=None):
  """jit(params, rng, temperature=None) -> {'tokens', 'order', 'logprob'} (num_steps is static,
  returned apart). `rules` and `mesh`: the logical-axis rule table and the mesh, so that
  activations and the KV cache shard like the model. A `temperature` passed to the call (a
  scalar) replaces the spec's without recompiling: a frontier's temperatures share one program."""

  spec.validate(mcfg.variant, mcfg.vocab_size)

  def fn(params, rng, temperature=None):
    # Dense kernels are cast to the compute dtype by every use; cast them once, outside the
    # decode loop (XLA does not hoist the casts: ~9% of a 6/384 step). Same values.
    dt = mcfg.compute_dtype
    params = jax.tree_util.tree_map_with_path(
      lambda path, p: p.astype(dt) if getattr(path[-1], "key", None) == "kernel" else p, params
    )
    s = spec if temperature is None else dataclasses.replace(spec, temperature=temperature)
    with sharding.activate(mesh, rules):
      out = sample(model, params, mcfg, s, rng, batch)
    return {k: v for k, v in out.items() if k != "num_steps"}

  return jax.jit(fn)
