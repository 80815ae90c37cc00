"""Generative evaluation: the coherence-diversity frontier of a set of checkpoints.

  python -m aoarm.gen_eval --judge=RUNS/ar --runs=RUNS/two_stream,RUNS/mdm \\
      --temperatures=0.6,0.8,1.0 --num_samples=64 --out=RUNS/frontier

For each run and temperature: sample, score the samples with the `ar` judge (generative
perplexity, left to right) and measure their diversity (unigram entropy of each sample, averaged).
Writes OUT.json and OUT.png (perplexity against entropy, one line per run).
"""

import argparse
import json
import math
import os

import jax
import ml_collections as mlc
import numpy as np

from aoarm import losses, models, orders, sampling
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


def judge_nll(judge, params, x_BxL) -> float:
  sigma = orders.identity_orders(*x_BxL.shape)
  return float(losses.any_order_nll(judge.model.apply, params, x_BxL, sigma).mean())


def frontier(judge_dir, run_dirs, temperatures, num_samples, seed=0, k=1, order="random"):
  _, jrun, judge, jparams, _ = load_run(judge_dir)
  if models.traits(jrun.mcfg.variant).objective != "left_to_right":
    raise UserError(
      f"the judge must be a left-to-right model (ar), {judge_dir} is {jrun.mcfg.variant}"
    )
  results = []
  for d in run_dirs:
    cfg, run, placed, params, step = load_run(d)
    if run.data.tokenizer.to_json() != jrun.data.tokenizer.to_json():
      raise UserError(f"{d} and the judge {judge_dir} have different vocabularies")
    for t in temperatures:
      v, traits = run.mcfg.variant, models.traits(run.mcfg.variant)
      spec = sampling.SampleSpec(
        length=run.mcfg.seq_len,
        temperature=t,
        k=k if traits.sampler == "query" else 1,
        order=order if traits.random_orders else "l2r",
      )
      fn = sampling.make_sampler(
        placed.model, run.mcfg, spec, num_samples, placed.rules, placed.mesh
      )
      x = jax.device_get(fn(params, jax.random.key(seed))["tokens"])
      nll = judge_nll(judge, jparams, x)
      results.append(
        {
          "run": d,
          "variant": v,
          "step": step,
          "temperature": t,
          "num_samples": num_samples,
          "gen_nll": nll,
          "gen_perplexity": math.exp(nll),
          "unigram_entropy": unigram_entropy(x),
          "example": run.data.tokenizer.decode(x[0])[:200],
        }
      )
      print(json.dumps({k: r for k, r in results[-1].items() if k != "example"}), flush=True)
  return results


def plot(results, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4.5))
  for run in dict.fromkeys(r["run"] for r in results):
    rs = [r for r in results if r["run"] == run]
    ax.plot(
      [r["unigram_entropy"] for r in rs],
      [r["gen_perplexity"] for r in rs],
      "o-",
      label=f"{rs[0]['variant']} ({os.path.basename(run.rstrip('/'))})",
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
  p.add_argument("--k", type=int, default=1)
  p.add_argument("--order", default="random")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True, help="output prefix: OUT.json and OUT.png")
  a = p.parse_args(argv)
  try:
    temps = [float(t) for t in a.temperatures.split(",")]
    res = frontier(a.judge, a.runs.split(","), temps, a.num_samples, a.seed, a.k, a.order)
  except UserError as e:
    raise SystemExit(f"aoarm: error: {e}") from None
  with open(a.out + ".json", "w") as f:
    json.dump(res, f, indent=2)
  plot(res, a.out + ".png")
  print(f"wrote {a.out}.json and {a.out}.png")


if __name__ == "__main__":
  main()
