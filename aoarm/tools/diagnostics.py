"""Structural vs semantic attention (docs/diagnostics.md), per layer and head, beside uniform
baselines.

For a row that predicts y_t (single stream: row t; two-stream: query row t, and content row t+1
which holds y_t), with attention weights a_j over the rows j it may see:
- structural: mass on the m most recent rows (row - j < m), i.e. recent in generation order;
- semantic: mass on the m rows whose positions are nearest the target, |sigma_t - pos_j|.
Each beside its value under uniform attention, min(m, n)/n for n visible rows; averaged over
rows and windows, with the standard error over windows of every mean (`<key>_stderr`, per head
and in the summary; each window has its own random order).

  python -m aoarm.tools.diagnostics --workdir=DIR [--num_windows=64]
  # -> DIR/diagnostics/step_N.json
"""

import argparse
import dataclasses
import json
import os
import sys

import jax
import numpy as np

from aoarm import models, orders
from aoarm.infra import workdir as workdir_lib
from aoarm.infra.errors import UserError
from aoarm.models import get_model

MS = (1, 2, 4, 8)


def masses(w_BxHxTxS, rows_T, tgt_BxT, pos_BxS, ms=MS, per_window=False):
  """Attention masses for query rows at absolute rows `rows_T` (each sees keys j <= row).

  Returns {'structural': {m: H}, 'semantic': {m: H}, 'uniform': {m: float}} averaged over B x T
  (with `per_window`, structural and semantic averaged over T only: {m: B x H}).
  """
  w = np.asarray(w_BxHxTxS, np.float64)
  B, H, T, S = w.shape
  j_S = np.arange(S)
  rows_T = np.asarray(rows_T)
  vis_TxS = j_S[None, :] <= rows_T[:, None]
  recency_TxS = rows_T[:, None] - j_S[None, :]
  dist_BxTxS = np.abs(np.asarray(tgt_BxT)[:, :, None] - np.asarray(pos_BxS)[:, None, :])
  # rank visible keys by distance to the target (ties: the more recent first); invisible last
  key = np.where(vis_TxS[None], dist_BxTxS * (S + 1) + recency_TxS[None], np.inf)
  rank_BxTxS = np.argsort(np.argsort(key, axis=-1, kind="stable"), axis=-1)
  n_T = vis_TxS.sum(-1)
  out = {"structural": {}, "semantic": {}, "uniform": {}}
  for m in ms:
    recent_TxS = vis_TxS & (recency_TxS < m)
    near_BxTxS = rank_BxTxS < m
    axes = 2 if per_window else (0, 2)
    out["structural"][m] = (w * recent_TxS[None, None]).sum(-1).mean(axis=axes)
    out["semantic"][m] = (w * near_BxTxS[:, None]).sum(-1).mean(axis=axes)
    out["uniform"][m] = float(np.mean(np.minimum(m, n_T) / n_T))
  return out


def analyse(model, params, mcfg, x_BxL, sigma_BxL, per_window=False) -> list[dict]:
  """Per layer, stream and head: structural/semantic masses of one batch (floats; with
  `per_window`, one value per window: arrays of B)."""
  traits = models.traits(mcfg.variant)
  if not traits.has_order:
    raise ValueError(
      f"{mcfg.variant} has no generation order: structural recency is undefined for it"
    )
  cfg = dataclasses.replace(mcfg, capture_attention=True)
  m = get_model(cfg)
  _, st = m.apply({"params": params}, x_BxL, sigma_BxL, mutable=["intermediates"])
  inter = st["intermediates"]["backbone"]
  B, L = x_BxL.shape
  sigma = np.asarray(sigma_BxL if traits.random_orders else orders.identity_orders(B, L))
  own = np.asarray(orders.own_positions(sigma))  # key positions of content rows
  out = []
  for li in range(mcfg.num_layers):
    att = inter[f"block_{li}"]["attn"]
    streams = []
    if traits.streams == 2:
      if "query_weights" in att:  # below model.query_layers' blocks, no query stream
        streams.append(("query", att["query_weights"][0], np.arange(L), sigma))
      if "content_weights" in att:  # the last layer's content stream is not computed
        w = att["content_weights"][0][:, :, 1:]  # content row t+1 holds y_t
        streams.append(("content", w, np.arange(1, L), sigma[:, : L - 1]))
    else:
      streams.append(("content", att["content_weights"][0], np.arange(L), sigma))
    for name, w, rows, tgt in streams:
      r = masses(np.asarray(w), rows, tgt, own, per_window=per_window)
      pick = (lambda a, h: a[:, h]) if per_window else (lambda a, h: float(a[h]))
      for h in range(mcfg.num_heads):
        out.append(
          {
            "layer": li,
            "stream": name,
            "head": h,
            **{f"structural_{m}": pick(r["structural"][m], h) for m in MS},
            **{f"semantic_{m}": pick(r["semantic"][m], h) for m in MS},
            **{f"uniform_{m}": r["uniform"][m] for m in MS},
          }
        )
  return out


MEASURED = ("structural", "semantic")  # the masses that vary by window (uniform does not)


def _mean_se(v_N) -> tuple[float, float]:
  """Mean over windows and its standard error (0 for one window)."""
  v = np.asarray(v_N, np.float64)
  return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(rows: list[dict]) -> dict:
  """Means over heads and layers, per stream. Where the rows hold one value per window (arrays,
  `analyse(per_window=True)`), each mean over heads and layers is taken per window first, and
  `<key>_stderr` is its standard error over the windows."""
  out = {}
  for stream in sorted({r["stream"] for r in rows}):
    rs = [r for r in rows if r["stream"] == stream]
    out[stream] = {}
    for k in rs[0]:
      if k.split("_")[0] not in (*MEASURED, "uniform"):
        continue
      if np.ndim(rs[0][k]) == 0:
        out[stream][k] = float(np.mean([r[k] for r in rs]))
        continue
      out[stream][k], out[stream][f"{k}_stderr"] = _mean_se(np.mean([r[k] for r in rs], axis=0))
  return out


def _saved_variant(workdir: str):
  """The run's variant from its config.json (checked before any restore), or None."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f)["model"]["variant"]
  except (OSError, ValueError, KeyError):
    return None


def run(workdir: str, num_windows: int = 64, batch: int = 16, seed: int = 0) -> dict:
  from aoarm.data import pipeline
  from aoarm.sample.front import load_run

  variant = _saved_variant(workdir)
  if variant is not None and not models.traits(variant).has_order:
    raise UserError(f"{variant} has no generation order: structural recency is undefined")
  cfg, run_, placed, params, step = load_run(workdir)
  mcfg = run_.mcfg
  w = pipeline.windows(run_.data.splits[cfg.eval.split], mcfg.seq_len)[:num_windows]
  batches = []
  for i in range(0, len(w), batch):
    x = jax.numpy.asarray(w[i : i + batch])
    sigma = orders.random_orders(jax.random.fold_in(jax.random.key(seed), i), len(x), mcfg.seq_len)
    batches.append(analyse(placed.model, params, mcfg, x, sigma, per_window=True))
  windows = [  # per layer, stream and head: each measured mass as one value per window
    {
      k: np.concatenate([b[j][k] for b in batches]) if k.split("_")[0] in MEASURED else v
      for k, v in batches[0][j].items()
    }
    for j in range(len(batches[0]))
  ]
  per_head = []
  for r in windows:
    row = {}
    for k, v in r.items():
      if k.split("_")[0] in MEASURED:
        row[k], row[f"{k}_stderr"] = _mean_se(v)
      else:
        row[k] = v
    per_head.append(row)
  result = {
    "variant": mcfg.variant,
    "seq_len": mcfg.seq_len,
    "step": step,
    "num_windows": len(w),
    "target_heads": mcfg.target_heads,
    "order_dims": mcfg.order_dims,
    "summary": summarize(windows),  # each mass with <key>_stderr over the windows
    "per_head": per_head,
  }
  os.makedirs(os.path.join(workdir, "diagnostics"), exist_ok=True)
  path = os.path.join(workdir, "diagnostics", f"step_{step}.json")
  workdir_lib.write_atomic(path, json.dumps(result, indent=1))
  print(f"wrote {path}", file=sys.stderr)
  return result


def main(argv=None):
  p = argparse.ArgumentParser(description="structural vs semantic attention of a checkpoint")
  p.add_argument("--workdir", required=True)
  p.add_argument("--num_windows", type=int, default=64)
  p.add_argument("--batch", type=int, default=16)
  a = p.parse_args(argv)
  try:
    for flag in ("num_windows", "batch"):
      if getattr(a, flag) < 1:
        raise UserError(f"--{flag}={getattr(a, flag)} must be at least 1")
    r = run(a.workdir, a.num_windows, a.batch)
  except UserError as e:
    print(f"aoarm: error: {e}", file=sys.stderr)
    sys.exit(2)
  print(json.dumps(r["summary"], indent=1))


if __name__ == "__main__":
  main()
