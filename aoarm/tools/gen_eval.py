"""Generative evaluation: the coherence-diversity frontier of a set of checkpoints.

  python -m aoarm.tools.gen_eval --judge=RUNS/ar --runs=RUNS/two_stream,RUNS/mdm \\
      --temperatures=0.6,0.8,1.0 --num_samples=64 --out=RUNS/frontier

For each run, sampler setting (`--ks` and `--adaptive` for two-stream models, `--mdm_steps` for
mdm) and temperature: sample (`aoarm.sample.gen_samples`, the final draw in float64 by default),
score the samples with the `ar` judge (generative perplexity, left to right, in the judge's window
length) and measure their diversity (unigram entropy of each sample, averaged; with
`--word_level`, valid words, repeated and distinct n-grams: `aoarm.tools.text_metrics`). Held-out
text of the judge's valid split, cut into windows of each sample length, is scored the same way: the
reference point (`variant: "data"`). Sampling and scoring can run apart: without `--judge` the
samples go to OUT.samples.npz; `--samples=F1,F2` scores such files later. Writes OUT.samples.npz,
OUT.json (one row per point, with `variant`, `seq_len`, `temperature`, `sampler`, `num_samples`,
`gen_perplexity`, `gen_nll_stderr` (across samples), `unigram_entropy`, the judge's size and
held-out bits, ...) and one plot per sample length, OUT_L<L>.png (`aoarm.tools.frontier_plot`).
"""

import argparse
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from aoarm import models
from aoarm.infra import sharding
from aoarm.infra import workdir as workdir_lib
from aoarm.infra.errors import UserError
from aoarm.run import evaluate
from aoarm.sample import front, gen_samples
from aoarm.tools import text_metrics


def unigram_entropy(tokens_BxL: np.ndarray) -> float:
  """Mean over samples of the entropy (nats) of each sample's token histogram."""
  out = []
  for row in tokens_BxL:
    _, counts = np.unique(row, return_counts=True)
    p = counts / counts.sum()
    out.append(float(-(p * np.log(p)).sum()))
  return float(np.mean(out))


def judge_nll(judge, nll_fn, params, x_BxL) -> tuple[float, float, int]:
  """(mean NLL per token, its standard error across samples, windows per sample) of samples
  under the judge, left to right, in the judge's own window length: a longer sample is scored as
  consecutive windows, each from its start (the remainder past the last whole window is left
  out). `nll_fn`: the judge's compiled per-window NLL (`evaluate.make_eval_fn`), so that a
  frontier's rows share one compilation per shape instead of running the model op by op."""
  L = judge.mcfg.seq_len
  B, n = x_BxL.shape[0], max(x_BxL.shape[1] // L, 1)
  x = np.asarray(x_BxL)[:, : n * L].reshape(-1, min(L, x_BxL.shape[1]))
  pad = -len(x) % sharding.data_parallel_size(judge.mesh)  # whole rows per device; cut after
  x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])
  nll = np.asarray(nll_fn(params, sharding.global_batch_from_full(x, judge.mesh), jnp.int32(0)))
  nll_B = nll[: B * n].reshape(B, n).mean(axis=1)
  se = float(nll_B.std(ddof=1) / math.sqrt(B)) if B > 1 else float("nan")
  return float(nll_B.mean()), se, n


JUDGE_BATCH = 64  # held-out windows per call of the judge's compiled NLL


def judge_heldout(judge, nll_fn, params, held) -> tuple[float, float, int]:
  """(bits per token, its standard error over windows, windows) of the judge on every window of
  its held-out split, left to right: measured here, on the weights that score the samples."""
  from aoarm.data import pipeline

  w = np.asarray(pipeline.windows(np.asarray(held), judge.mcfg.seq_len))
  if not len(w):
    raise UserError(f"the judge's held-out split is shorter than its L={judge.mcfg.seq_len}")
  dp = sharding.data_parallel_size(judge.mesh)
  out = []
  for i in range(0, len(w), JUDGE_BATCH):
    x = w[i : i + JUDGE_BATCH]
    x = np.concatenate([x, np.repeat(x[:1], JUDGE_BATCH - len(x) + (-JUDGE_BATCH % dp), 0)])
    nll = np.asarray(nll_fn(params, sharding.global_batch_from_full(x, judge.mesh), jnp.int32(0)))
    out.append(nll[: min(JUDGE_BATCH, len(w) - i)])
  bits = np.concatenate(out) / math.log(2)
  se = float(bits.std(ddof=1) / math.sqrt(len(bits))) if len(bits) > 1 else float("nan")
  return float(bits.mean()), se, len(bits)


def judge_info(judge_dir, jrun, jparams, step, heldout) -> dict:
  """What a frontier must state about its judge: size, window, the checkpoint read (the best
  in-training validation loss where the judge kept one: early stopping) and its bits per token
  on the whole held-out split (`judge_heldout`), with the standard error over windows."""
  m = jrun.mcfg
  bits, se, n = heldout
  return {
    "judge": judge_dir,
    "judge_params": int(sum(np.size(p) for p in jax.tree.leaves(jparams))),
    "judge_shape": f"{m.num_layers}x{m.d_model}",
    "judge_seq_len": m.seq_len,
    "judge_checkpoint": jrun.checkpoint,  # latest | best
    "judge_step": int(step),
    "judge_valid_bits": bits,  # whole split, measured by gen_eval on these weights
    "judge_valid_bits_stderr": se,
    "judge_valid_windows": n,
    "judge_eval_capped": False,
  }


def judge_checkpoint(judge_dir: str, choice: str) -> str:
  """--judge_checkpoint: auto -> best where the judge kept one (DIR/ckpt_best), else latest."""
  if choice == "auto":
    return "best" if os.path.isdir(os.path.join(judge_dir, "ckpt_best")) else "latest"
  return choice


def score(
  judge_dir, tokenizer: dict, points: list, word_level=False, text=None, checkpoint="auto"
) -> list[dict]:
  """One row per point (tokens dropped), then one `data` row per sample length: held-out text
  in as many windows as the largest point has samples. With a judge (an `ar` run directory) the
  held-out and training text are its run's splits and every row has the samples' generative
  NLL; without one (`judge_dir=None`), `text=(train_path, valid_path)` gives them and the rows
  carry the judge-free measures only (entropy, word measures). `checkpoint`: the judge's
  (`judge_checkpoint`)."""
  judge = jparams = None
  if judge_dir:
    which = judge_checkpoint(judge_dir, checkpoint)
    _, jrun, judge, jparams, jstep = front.load_run(judge_dir, checkpoint=which)
    if models.traits(jrun.mcfg.variant).objective != "left_to_right":
      raise UserError(
        f"the judge must be a left-to-right model (ar), {judge_dir} is {jrun.mcfg.variant}"
      )
    tok = jrun.data.tokenizer
    if tokenizer != tok.to_json():
      raise UserError(f"the samples and the judge {judge_dir} have different vocabularies")
    nll_fn = evaluate.make_eval_fn(judge, "l2r", 1)
    train_text = tok.decode(np.asarray(jrun.data.splits["train"])) if word_level else ""
    held, where = np.asarray(jrun.data.splits["valid"]), f"{judge_dir} valid split"
    heldout = judge_heldout(judge, nll_fn, jparams, held)
    info = judge_info(judge_dir, jrun, jparams, jstep, heldout)
  else:
    from aoarm.data import tokenizers

    tok, info = tokenizers.from_json(tokenizer), {}
    train_text = _read(text[0]) if word_level else ""
    held, where = np.asarray(tok.encode(_read(text[1]))), text[1]
  vocab = text_metrics.vocabulary(train_text) if word_level else None
  for L in sorted({p["seq_len"] for p in points}):
    n = max(p["num_samples"] for p in points if p["seq_len"] == L)
    if len(held) < L:
      raise UserError(f"the held-out text ({len(held)} tokens) is shorter than L={L}")
    starts = np.linspace(0, len(held) - L, n).astype(int)
    points = points + [
      {
        "run": where,
        "variant": "data",
        "seq_len": L,
        "temperature": None,
        "sampler": "held-out text",
        "num_samples": n,
        "tokens": np.stack([held[s : s + L] for s in starts]),
      }
    ]
  rows = []
  for p in points:
    x = p["tokens"]
    texts = [tok.decode(row) for row in x]
    row = {k: v for k, v in p.items() if k != "tokens"}
    if judge is not None:
      nll, se, windows = judge_nll(judge, nll_fn, jparams, x)
      row.update(
        gen_nll=nll,
        gen_nll_stderr=se,  # across the point's samples: the noise of a frontier point
        gen_perplexity=math.exp(nll),
        judge_windows=windows,
      )
    row.update(
      unigram_entropy=unigram_entropy(x),
      **(text_metrics.word_metrics(texts, vocab) if word_level else {}),
      **info,
      example=texts[0][:200],
    )
    rows.append(row)
    print(json.dumps({k: r for k, r in row.items() if k != "example"}), flush=True)
  return rows


def _read(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except OSError as e:
    raise UserError(f"cannot read {path}: {e.strerror}") from None


def _ints(s: str) -> list[int]:
  try:
    return [int(v) for v in s.split(",") if v.strip()]
  except ValueError:
    raise UserError(f"{s!r} is not a comma list of integers") from None


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--judge", help="an ar run directory; without it, sample (and --text scoring)")
  p.add_argument(
    "--judge_checkpoint",
    default="auto",
    choices=("auto", "best", "latest"),
    help="the judge's weights: auto = its best validation checkpoint where it kept one",
  )
  p.add_argument(
    "--text",
    default="",
    help="TRAIN,VALID text files: score --samples without a judge (entropy, word measures)",
  )
  p.add_argument("--runs", default="", help="comma-separated run directories to sample")
  p.add_argument("--samples", default="", help="comma-separated OUT.samples.npz files to score")
  p.add_argument("--temperatures", default="0.7,0.85,1.0")
  p.add_argument("--num_samples", type=int, default=32)
  p.add_argument("--ks", default="1", help="two-stream runs: targets per step, a comma list")
  p.add_argument("--adaptive", action="store_true", help="two-stream runs: adaptive order too")
  p.add_argument("--mdm_steps", default="0", help="mdm runs: denoising steps (0 = L), a list")
  p.add_argument("--order", default="random")
  p.add_argument("--precision", default="float64", choices=("float64", "float32"))
  p.add_argument("--word_level", action="store_true", help="word measures (text8-like text)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True, help="prefix: OUT.samples.npz, OUT.json, OUT_L*.png")
  a = p.parse_args(argv)
  try:
    if not a.runs and not a.samples:
      raise UserError("nothing to do: give --runs to sample and/or --samples to score")
    if a.samples and not a.judge and not a.text:
      raise UserError("--samples needs --judge, or --text=TRAIN,VALID for judge-free measures")
    text = a.text.split(",") if a.text else None
    if text is not None and len(text) != 2:
      raise UserError(f"--text={a.text}: give two files, TRAIN,VALID")
    tokenizer, points = None, []
    for f in filter(None, a.samples.split(",")):
      tokenizer, points = _merge(tokenizer, points, *gen_samples.load(f), f)
    temps = _temperatures(a.temperatures)
    if a.num_samples < 1:
      raise UserError(f"--num_samples={a.num_samples} must be at least 1")
    fresh = []
    for d in filter(None, a.runs.split(",")):
      tok, pts = gen_samples.sample_run(
        d,
        temps,
        a.num_samples,
        a.seed,
        ks=_ints(a.ks),
        order=a.order,
        adaptive=a.adaptive,
        mdm_steps=_ints(a.mdm_steps),
        precision=a.precision,
      )
      tokenizer, points = _merge(tokenizer, points, tok, pts, d)
      fresh += pts
    if fresh:
      gen_samples.save(a.out + ".samples.npz", tokenizer, fresh)
      print(f"wrote {a.out}.samples.npz")
    if not a.judge and not (text and points):
      return
    rows = score(a.judge, tokenizer, points, a.word_level, text, a.judge_checkpoint)
  except UserError as e:
    print(f"aoarm: error: {e}", file=sys.stderr)
    raise SystemExit(2) from None
  workdir_lib.write_atomic(a.out + ".json", json.dumps(rows, indent=2))
  from aoarm.tools import frontier_plot

  paths = frontier_plot.plot_per_length(rows, a.out)
  print(f"wrote {a.out}.json and {', '.join(paths)}")


def _temperatures(text: str) -> list[float]:
  """--temperatures: a comma list of finite numbers >= 0 (0 = greedy)."""
  import math

  out = []
  for t in filter(None, text.split(",")):
    try:
      v = float(t)
    except ValueError:
      raise UserError(f"--temperatures={text}: {t!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
      raise UserError(f"--temperatures={text}: {t!r} must be a finite number >= 0")
    out.append(v)
  if not out:
    raise UserError(f"--temperatures={text!r}: give at least one temperature")
  return out


def _merge(tokenizer, points, tok, pts, where):
  if tokenizer is not None and tok != tokenizer:
    raise UserError(f"{where} has another vocabulary than the samples before it")
  return tok, points + pts


if __name__ == "__main__":
  main()
