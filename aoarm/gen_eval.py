"""Generative evaluation: the coherence-diversity frontier of a set of checkpoints.

  python -m aoarm.gen_eval --judge=RUNS/ar --runs=RUNS/two_stream,RUNS/mdm \\
      --temperatures=0.6,0.8,1.0 --num_samples=64 --out=RUNS/frontier

For each run, sampler setting (`--ks` and `--adaptive` for two-stream models, `--mdm_steps` for
mdm) and temperature: sample, score the samples with the `ar` judge (generative perplexity, left
to right, in the judge's window length) and measure their diversity (unigram entropy of each
sample, averaged; with `--word_level`, valid words, repeated and distinct n-grams:
`aoarm.text_metrics`). Writes OUT.json (one row per point, with `variant`, `seq_len`,
`temperature`, `sampler`, `num_samples`, `gen_perplexity`, `unigram_entropy`, ...) and OUT.png
(perplexity against entropy, one line per run and sampler setting).
"""

import argparse
import json
import math
import os

import jax
import ml_collections as mlc
import numpy as np

from aoarm import losses, models, orders, sampling, text_metrics
from aoarm.errors import UserError


def load_run(workdir: str):
  from aoarm.prepare import restore_params

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"no config.json in {workdir}")
  with open(path) as f:
    cfg = mlc.ConfigDict(json.load(f))
  return (cfg,) + restore_params(cfg, workdir, "read")


def unigram_entropy(tokens_BxL: np.ndarray) -> float:
  """Mean over samples of the entropy (nats) of each sample's token histogram."""
  out = []
  for row in tokens_BxL:
    _, counts = np.unique(row, return_counts=True)
    p = counts / counts.sum()
    out.append(float(-(p * np.log(p)).sum()))
  return float(np.mean(out))


def judge_nll(judge, params, x_BxL) -> tuple[float, int]:
  """(mean NLL per token, windows per sample) of samples under the judge, left to right, in the
  judge's own window length: a longer sample is scored as consecutive windows, each from its
  start (the remainder past the last whole window is left out)."""
  L = judge.mcfg.seq_len
  n = max(x_BxL.shape[1] // L, 1)
  x = np.asarray(x_BxL)[:, : n * L].reshape(-1, min(L, x_BxL.shape[1]))
  sigma = orders.identity_orders(*x.shape)
  return float(losses.any_order_nll(judge.model.apply, params, x, sigma).mean()), n


def settings(traits, L, ks=(1,), adaptive=False, mdm_steps=(0,), order="random") -> list[dict]:
  """The sampler settings a frontier sweeps for one model: k targets per step (and the
  confidence-adaptive order) for the `query` family, denoising steps for `unmask`, the one
  ancestral sampler otherwise."""
  if traits.sampler == "unmask":
    return [{"mdm_steps": s or L, "order": "random", "k": 1} for s in mdm_steps]
  if traits.sampler == "query":
    out = [{"k": k, "order": order, "mdm_steps": 0} for k in ks]
    return out + ([{"k": k, "order": "adaptive", "mdm_steps": 0} for k in ks] if adaptive else [])
  return [{"k": 1, "order": order if traits.random_orders else "l2r", "mdm_steps": 0}]


def frontier(
  judge_dir,
  run_dirs,
  temperatures,
  num_samples,
  seed=0,
  ks=(1,),
  order="random",
  adaptive=False,
  mdm_steps=(0,),
  word_level=False,
):
  """One row per (run, sampler setting, temperature): the samples' generative NLL and
  perplexity under the `ar` judge, their unigram entropy, and for word-level text the word
  measures (`text_metrics`, valid words against the judge's training split)."""
  _, jrun, judge, jparams, _ = load_run(judge_dir)
  if models.traits(jrun.mcfg.variant).objective != "left_to_right":
    raise UserError(
      f"the judge must be a left-to-right model (ar), {judge_dir} is {jrun.mcfg.variant}"
    )
  vocab = None
  if word_level:
    train = jrun.data.splits["train"]
    vocab = text_metrics.vocabulary(jrun.data.tokenizer.decode(np.asarray(train)))
  results = []
  for d in run_dirs:
    cfg, run, placed, params, step = load_run(d)
    if run.data.tokenizer.to_json() != jrun.data.tokenizer.to_json():
      raise UserError(f"{d} and the judge {judge_dir} have different vocabularies")
    traits = models.traits(run.mcfg.variant)
    for setting in settings(traits, run.mcfg.seq_len, ks, adaptive, mdm_steps, order):
      for t in temperatures:
        spec = sampling.SampleSpec(length=run.mcfg.seq_len, temperature=t, **setting)
        fn = sampling.make_sampler(
          placed.model, run.mcfg, spec, num_samples, placed.rules, placed.mesh
        )
        x = jax.device_get(fn(params, jax.random.key(seed))["tokens"])
        nll, windows = judge_nll(judge, jparams, x)
        texts = [run.data.tokenizer.decode(row) for row in x]
        row = {
          "run": d,
          "variant": run.mcfg.variant,
          "seq_len": run.mcfg.seq_len,
          "step": step,
          "temperature": t,
          "sampler": _describe(setting),
          **setting,
          "num_samples": num_samples,
          "gen_nll": nll,
          "gen_perplexity": math.exp(nll),
          "judge_windows": windows,
          "unigram_entropy": unigram_entropy(x),
          **(text_metrics.word_metrics(texts, vocab) if word_level else {}),
          "example": texts[0][:200],
        }
        results.append(row)
        print(json.dumps({k: r for k, r in row.items() if k != "example"}), flush=True)
  return results


def _describe(setting: dict) -> str:
  """A short name of a sampler setting for tables and legends."""
  if setting["mdm_steps"]:
    return f"S={setting['mdm_steps']}"
  if setting["order"] in ("random", "l2r"):
    return f"k={setting['k']}"
  return f"{setting['order']} k={setting['k']}"


def plot(results, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4.5))
  for run, sampler in dict.fromkeys((r["run"], r["sampler"]) for r in results):
    rs = [r for r in results if r["run"] == run and r["sampler"] == sampler]
    ax.plot(
      [r["unigram_entropy"] for r in rs],
      [r["gen_perplexity"] for r in rs],
      "o-",
      label=f"{rs[0]['variant']} {sampler} ({os.path.basename(run.rstrip('/'))})",
    )
    for r in rs:
      ax.annotate(f"T={r['temperature']}", (r["unigram_entropy"], r["gen_perplexity"]), fontsize=7)
  ax.set_xlabel("unigram entropy of samples (nats)")
  ax.set_ylabel("generative perplexity (ar judge)")
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--judge", required=True)
  p.add_argument("--runs", required=True, help="comma-separated run directories")
  p.add_argument("--temperatures", default="0.7,0.85,1.0")
  p.add_argument("--num_samples", type=int, default=32)
  p.add_argument("--ks", default="1", help="two-stream runs: targets per step, a comma list")
  p.add_argument("--adaptive", action="store_true", help="two-stream runs: adaptive order too")
  p.add_argument("--mdm_steps", default="0", help="mdm runs: denoising steps (0 = L), a list")
  p.add_argument("--order", default="random")
  p.add_argument("--word_level", action="store_true", help="word measures (text8-like text)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True, help="output prefix: OUT.json and OUT.png")
  a = p.parse_args(argv)
  try:
    temps = [float(t) for t in a.temperatures.split(",")]
    res = frontier(
      a.judge,
      a.runs.split(","),
      temps,
      a.num_samples,
      a.seed,
      ks=[int(k) for k in a.ks.split(",")],
      order=a.order,
      adaptive=a.adaptive,
      mdm_steps=[int(s) for s in a.mdm_steps.split(",")],
      word_level=a.word_level,
    )
  except UserError as e:
    raise SystemExit(f"aoarm: error: {e}") from None
  with open(a.out + ".json", "w") as f:
    json.dump(res, f, indent=2)
  plot(res, a.out + ".png")
  print(f"wrote {a.out}.json and {a.out}.png")


if __name__ == "__main__":
  main()
