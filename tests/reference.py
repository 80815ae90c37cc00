"""A slow, naive float64 NumPy reference of every variant in the *original* layout (test-only).

Rows are indexed by sequence position, not generation order; who-sees-whom comes from explicit
masks built from ranks in the order, and each row carries its own position ids. Shares nothing with
the JAX implementation except the parameter tree it reads.
"""

import math

import numpy as np


def rope(x_TxHxK, pos_TxH, base=10_000.0):
  """Complex-number rotary embedding: pair (i, i + K/2) rotated by pos * base^(-2i/K)."""
  K = x_TxHxK.shape[-1]
  half = K // 2
  theta = base ** (-2.0 * np.arange(half) / K)
  z = x_TxHxK[..., :half] + 1j * x_TxHxK[..., half:]
  z = z * np.exp(1j * pos_TxH[..., None] * theta)
  return np.concatenate([z.real, z.imag], axis=-1)


def rope_split(x, pos, step, order_frac, base=10_000.0):
  K = x.shape[-1]
  n_ord = 2 * int(round(order_frac * K / 2))
  if n_ord == 0:
    return rope(x, pos, base)
  return np.concatenate(
    [rope(x[..., : K - n_ord], pos, base), rope(x[..., K - n_ord :], step, base)], axis=-1
  )


EPS = [1e-6]  # every norm's epsilon (`model.norm_eps`), set by `forward` from the config
EXACT_GELU = [False]  # `model.gelu=exact`, likewise


def rms(x, scale, eps=None):
  eps = EPS[0] if eps is None else eps
  return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * scale


def gelu(x):
  if EXACT_GELU[0]:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
  return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _b(p, name):
  """The bias `name` of a parameter dict (`model.bias`), else 0."""
  return p[name]["bias"] if name in p else 0.0


def _np(tree):
  if isinstance(tree, dict):
    return {k: _np(v) for k, v in tree.items()}
  return np.asarray(tree, dtype=np.float64)


def silu(x):
  return x / (1 + np.exp(-x))


def modulations(p_ada, c_TxC):
  """Adaptive norm: per row, the `num` vectors (shift, scale, gate, ...) of one block."""
  y = np.einsum("tc,cmd->tmd", c_TxC, p_ada["kernel"]) + p_ada["bias"]
  return [y[:, i] for i in range(y.shape[1])]


def attention(p, x_q, x_kv, mask_TxS, qpos_TxH, kpos_S, qstep_T, kstep_S, order_frac, use_rope):
  q = np.einsum("td,dhk->thk", x_q, p["wq"]["kernel"]) + _b(p, "bq")
  k = np.einsum("sd,dhk->shk", x_kv, p["wk"]["kernel"]) + _b(p, "bk")
  v = np.einsum("sd,dhk->shk", x_kv, p["wv"]["kernel"]) + _b(p, "bv")
  if "q_norm" in p:  # QK-norm: each head's query and key, before the rotation
    q, k = rms(q, p["q_norm"]["scale"]), rms(k, p["k_norm"]["scale"])
  H = q.shape[1]
  if use_rope:
    q = rope_split(q, qpos_TxH, np.repeat(qstep_T[:, None], H, 1), order_frac)
    k = rope_split(
      k, np.repeat(kpos_S[:, None], H, 1), np.repeat(kstep_S[:, None], H, 1), order_frac
    )
  s = np.einsum("thk,shk->hts", q, k) / math.sqrt(q.shape[-1])
  s = np.where(mask_TxS[None], s, -np.inf)
  w = np.exp(s - s.max(-1, keepdims=True))
  w = w / w.sum(-1, keepdims=True)
  o = np.einsum("hts,shk->thk", w, v)
  return np.einsum("thk,hkd->td", o, p["wo"]["kernel"]) + _b(p, "bo")


def mlp(p, x):
  return gelu(x @ p["wi"]["kernel"] + _b(p, "bi")) @ p["wo"]["kernel"] + _b(p, "bo")


def logits_of(bb, x, V, cond=None):
  x = rms(x, bb["final_norm"]["scale"])
  if cond is not None:  # aogpt's final adaptive norm
    shift, scale = modulations(bb["final_ada"], cond)
    x = x * (1 + scale) + shift
  if "head" in bb:
    return x @ bb["head"]["kernel"][:, :V] + bb["head"].get("bias", np.zeros(V + 1))[:V]
  return x @ bb["embed"]["embedding"][:V].T


def forward(params, cfg, x_L, sigma_L):
  """Logits in generation order (row t predicts x[sigma_t]) for one sequence, any variant."""
  p = _np(params)
  EPS[0], EXACT_GELU[0] = cfg.norm_eps, cfg.gelu == "exact"
  bb = p["backbone"]
  E = bb["embed"]["embedding"]
  L, V, H = len(x_L), cfg.vocab_size, cfg.num_heads
  v = cfg.variant
  if v == "ar":
    sigma_L = np.arange(L)
  if v == "mdm":
    h = E[x_L]
    pos = np.arange(L, dtype=np.float64)
    mask = np.ones((L, L), bool)
    for i in range(cfg.num_layers):
      b = bb[f"block_{i}"]
      hn = rms(h, b["norm1"]["scale"])
      h = h + attention(
        b["attn"], hn, hn, mask, np.repeat(pos[:, None], H, 1), pos, pos, pos, 0.0, True
      )
      h = h + mlp(b["mlp"], rms(h, b["norm2"]["scale"]))
    return logits_of(bb, h, V)

  sigma_L = np.asarray(sigma_L)
  rank = np.empty(L, int)
  rank[sigma_L] = np.arange(L)
  # Content rows in the original layout: row 0 = BOS, row 1 + p holds x_p.
  R = L + 1
  own = np.concatenate([[-1], np.arange(L)]).astype(np.float64)
  row_rank = np.concatenate([[-1], rank])
  content_mask = row_rank[None, :] <= row_rank[:, None]
  nxt = np.minimum(row_rank + 1, L - 1)  # the step each content row predicts (last: unused)
  tgt = sigma_L[nxt].astype(np.float64)
  h = np.concatenate([E[V][None], E[x_L]], axis=0)
  n_tgt = int(round(cfg.target_heads * H)) if v == "decoupled_rope" else 0
  order_frac = cfg.order_dims if v == "decoupled_rope" else 0.0
  if v == "decoupled_rope":
    qpos = np.where(np.arange(H)[None, :] < n_tgt, tgt[:, None], own[:, None])
  else:
    qpos = np.repeat(own[:, None], H, 1)
  steps = row_rank.astype(np.float64)
  learned_own = v == "aogpt" and cfg.own_positions == "learned"  # AO-GPT's own-position table
  use_rope = v != "sigma_gpt" and not learned_own
  if learned_own:
    h = h + p["pos_own"]["embedding"][(own + 1).astype(int)]
  if v == "sigma_gpt":
    own_rows = p["pos_own"]["embedding"][np.maximum(own, 0).astype(int)]
    p_own = np.where(own[:, None] >= 0, own_rows, 0)
    h = h + p_own + p["pos_tgt"]["embedding"][sigma_L[nxt]]
  if v == "two_stream":
    g = np.repeat(p["query_vector"][None], L, 0)  # query row p targets position p
    gpos = np.repeat(np.arange(L, dtype=np.float64)[:, None], H, 1)
    g_mask = row_rank[None, :] < rank[:, None]
    first_g = cfg.num_layers - cfg.query_layers if cfg.query_layers else 0
  # aogpt: every norm shifted and scaled, every branch gated, by the row's target position
  cond = silu(p["pos_tgt"]["embedding"][sigma_L[nxt]]) if v == "aogpt" else None
  for i in range(cfg.num_layers):
    b = bb[f"block_{i}"]
    hn = rms(h, b["norm1"]["scale"])
    if cond is not None:
      shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulations(b["ada"], cond)
      hn = hn * (1 + scale_a) + shift_a
      h = h + gate_a * attention(
        b["attn"], hn, hn, content_mask, qpos, own, steps, steps, 0.0, use_rope
      )
      h = h + gate_m * mlp(b["mlp"], rms(h, b["norm2"]["scale"]) * (1 + scale_m) + shift_m)
      continue
    if v == "two_stream" and i >= first_g:
      gn = rms(g, b["norm1"]["scale"])
      g = g + attention(b["attn"], gn, hn, g_mask, gpos, own, rank.astype(float), steps, 0.0, True)
      g = g + mlp(b["mlp"], rms(g, b["norm2"]["scale"]))
    h = h + attention(
      b["attn"], hn, hn, content_mask, qpos, own, steps, steps, order_frac, use_rope
    )
    h = h + mlp(b["mlp"], rms(h, b["norm2"]["scale"]))
  if v == "two_stream":
    return logits_of(bb, g, V)[sigma_L]  # query row of position sigma_t predicts y_t
  # The content row whose rank is t-1 (BOS for t=0) predicts y_t.
  row_of_rank = np.empty(R, int)
  row_of_rank[row_rank + 1] = np.arange(R)
  return logits_of(bb, h, V, cond)[row_of_rank[np.arange(L)]]
