"""Coherence-diversity plots of `aoarm.gen_eval` rows: one figure per sample length, generative
perplexity (log) against the samples' unigram entropy, one line per run and sampler setting
(temperature along the line), held-out text of the judge as the reference point, and the judge's
size and held-out bits in the title."""

import os


def _label(r: dict) -> str:
  return f"{r['variant']} {r['sampler']} ({os.path.basename(str(r['run']).rstrip('/'))})"


def _title(rows: list[dict], L: int) -> str:
  r = rows[0]
  bits = r.get("judge_valid_bits")
  part = " (part of the split)" if r.get("judge_eval_capped") else ""
  held = f", held-out {bits:.3f} bits/token{part}" if bits is not None else ""
  size = f"{r['judge_params'] / 1e6:.1f}M params, {r['judge_shape']}, L={r['judge_seq_len']}"
  return f"L = {L}; judge: ar, {size}{held}"


def plot(rows: list[dict], path: str, L: int) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 5))
  lines = [r for r in rows if r["variant"] != "data"]
  for key in dict.fromkeys((r["run"], r["sampler"]) for r in lines):
    rs = sorted(
      (r for r in lines if (r["run"], r["sampler"]) == key), key=lambda r: r["temperature"]
    )
    ax.plot(
      [r["unigram_entropy"] for r in rs],
      [r["gen_perplexity"] for r in rs],
      "o-",
      ms=3,
      label=_label(rs[0]),
    )
    for r in rs[:: max(len(rs) // 5, 1)]:
      xy = (r["unigram_entropy"], r["gen_perplexity"])
      ax.annotate(f"T={r['temperature']:g}", xy, fontsize=6)
  for r in rows:
    if r["variant"] == "data":
      ax.plot(r["unigram_entropy"], r["gen_perplexity"], "k*", ms=12, label="held-out text")
  ax.set_xlabel("unigram entropy of a sample (nats)")
  ax.set_ylabel("generative perplexity under the judge")
  ax.set_yscale("log")
  ax.set_title(_title(rows, L), fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_per_length(rows: list[dict], prefix: str) -> list[str]:
  """PREFIX_L<L>.png for every sample length among the rows; returns the paths."""
  paths = []
  for L in sorted({r["seq_len"] for r in rows}):
    path = f"{prefix}_L{L}.png"
    plot([r for r in rows if r["seq_len"] == L], path, L)
    paths.append(path)
  return paths
