"""Coherence-diversity plots of `aoarm.tools.gen_eval` rows: one figure per sample length,
generative perplexity (log) against the samples' unigram entropy, one line per run and sampler
setting (temperature along the line), held-out text of the judge as the reference point, and the
judge's size and held-out bits in the title."""

import os
import re


def arm(r: dict) -> str:
  """A frontier line's run without its training seed: the run directory's name with its
  `seed<N>` part (N = the row's `train_seed`) taken out, so seeds of one arm share it."""
  name = os.path.basename(str(r["run"]).rstrip("/"))
  if r.get("train_seed") is not None:
    name = re.sub(rf"_?seed{r['train_seed']}(?!\d)", "", name)
  return name


def _label(r: dict) -> str:
  return f"{r['variant']} {r['sampler']} ({os.path.basename(str(r['run']).rstrip('/'))})"


def _y(r: dict) -> float:
  """Coherence, lower is better: perplexity under the judge, else the share of invalid words."""
  return r["gen_perplexity"] if "gen_perplexity" in r else 1.0 - r["valid_words"]


def _title(rows: list[dict], L: int) -> str:
  r = rows[0]
  if "judge_params" not in r:
    return f"L = {L}; no judge: words not in the training text"
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
  colours = {}  # the seeds of one arm and sampler share a colour: their spread is what shows
  for key in dict.fromkeys((r["run"], r["sampler"]) for r in lines):
    rs = sorted(
      (r for r in lines if (r["run"], r["sampler"]) == key), key=lambda r: r["temperature"]
    )
    group = (arm(rs[0]), key[1])
    style = {"color": colours[group]} if group in colours else {}
    (line,) = ax.plot(
      [r["unigram_entropy"] for r in rs],
      [_y(r) for r in rs],
      "o-",
      ms=3,
      label=None if style else _label(rs[0]),
      **style,
    )
    colours.setdefault(group, line.get_color())
    for r in rs[:: max(len(rs) // 5, 1)]:
      xy = (r["unigram_entropy"], _y(r))
      ax.annotate(f"T={r['temperature']:g}", xy, fontsize=6)
  for r in rows:
    if r["variant"] == "data":
      ax.plot(r["unigram_entropy"], _y(r), "k*", ms=12, label="held-out text")
  ax.set_xlabel("unigram entropy of a sample (nats)")
  judged = "gen_perplexity" in rows[0]
  ax.set_ylabel("generative perplexity under the judge" if judged else "share of invalid words")
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


def at_entropy(rows: list[dict], key: str, h: float) -> float | None:
  """`key` of one frontier line (rows of one run and sampler setting) at unigram entropy `h`,
  linear between the two temperatures around it (None where the line does not reach h)."""
  pts = sorted((r["unigram_entropy"], r[key]) for r in rows)
  for (h0, y0), (h1, y1) in zip(pts, pts[1:], strict=False):
    if h0 <= h <= h1:
      return y0 if h1 == h0 else y0 + (y1 - y0) * (h - h0) / (h1 - h0)
  return None


def _cell(value, rel_err=None) -> str:
  if value is None:
    return "-"
  return f"{value:.3f}" + (f" ± {value * rel_err:.3f}" if rel_err else "")


def matched_table(rows: list[dict], key: str) -> str:
  """Markdown: per L, every line's `key` at the held-out text's own unigram entropy (a
  temperature-free comparison of frontiers), and at temperature 1 (the model's distribution)."""
  out = [f"| L | run | variant | sampler | draw | {key} at the data's entropy | {key} at T=1 |"]
  out.append("|---|---|---|---|---|---|---|")
  for L in sorted({r["seq_len"] for r in rows}):
    at_L = [r for r in rows if r["seq_len"] == L]
    data = [r for r in at_L if r["variant"] == "data"]
    h = data[0]["unigram_entropy"] if data else None
    for r in data:
      out.append(f"| {L} | | held-out text | | | {r[key]:.3f} (H={h:.3f}) | |")
    for line in dict.fromkeys((r["run"], r["sampler"]) for r in at_L if r["variant"] != "data"):
      rs = [r for r in at_L if (r["run"], r["sampler"]) == line]
      t1 = [r for r in rs if r["temperature"] == 1.0]
      # gen perplexity's ±: the NLL's standard error across samples, times the perplexity
      err = key == "gen_perplexity" and all("gen_nll_stderr" in r for r in rs)
      m, m_se, t, t_se = None, None, None, None
      if h is not None:
        m = at_entropy(rs, key, h)
        m_se = at_entropy(rs, "gen_nll_stderr", h) if err else None
      if t1:
        t, t_se = t1[0][key], t1[0]["gen_nll_stderr"] if err else None
      cells = [_cell(m, m_se), _cell(t, t_se)]
      run = os.path.basename(str(line[0]).rstrip("/"))
      out.append(
        f"| {L} | {run} | {rs[0]['variant']} | {line[1]} | {rs[0].get('precision', '')} | "
        + " | ".join(cells)
        + " |"
      )
  return "\n".join(out)


def _t_half(values) -> float | None:
  """Half-width of the Student-t 95% interval of the mean (None for one value)."""
  import numpy as np
  from scipy import stats

  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return None
  return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def seed_table(rows: list[dict], key: str) -> str:
  """Markdown: per L, arm and sampler, `key` at the data's entropy and at T=1 as the mean over
  the arm's training seeds ± the t 95% interval (n - 1 degrees of freedom), with n; a one-seed
  arm is marked as such."""
  out = [f"| L | arm | sampler | n | {key} at the data's entropy | {key} at T=1 |"]
  out.append("|---|---|---|---|---|---|")
  for L in sorted({r["seq_len"] for r in rows}):
    at_L = [r for r in rows if r["seq_len"] == L]
    data = [r for r in at_L if r["variant"] == "data"]
    h = data[0]["unigram_entropy"] if data else None
    models = [r for r in at_L if r["variant"] != "data"]
    for group in dict.fromkeys((arm(r), r["sampler"]) for r in models):
      rs = [r for r in models if (arm(r), r["sampler"]) == group]
      at_h, at_1 = [], []
      for run in dict.fromkeys(r["run"] for r in rs):
        line = [r for r in rs if r["run"] == run]
        v = at_entropy(line, key, h) if h is not None else None
        at_h += [v] if v is not None else []
        at_1 += [r[key] for r in line if r["temperature"] == 1.0]

      def cell(vs):
        if not vs:
          return "-"
        half = _t_half(vs)
        mean = sum(vs) / len(vs)
        return f"{mean:.3f} ± {half:.3f}" if half is not None else f"{mean:.3f} (1 seed)"

      n = len(dict.fromkeys(r["run"] for r in rs))
      out.append(f"| {L} | {group[0]} | {group[1]} | {n} | {cell(at_h)} | {cell(at_1)} |")
  return "\n".join(out)


def main(argv=None):
  """The matched-entropy table of a frontier JSON: by default of `gen_perplexity` where the rows
  have it (a judge scored them), else of `valid_words` (gen_eval --word_level)."""
  import argparse
  import json
  import sys

  p = argparse.ArgumentParser(description="the matched-entropy table of a frontier JSON")
  p.add_argument("frontier_json")
  p.add_argument("--key", default="", help="a row key: gen_perplexity, valid_words, ...")
  a = p.parse_args(argv)

  def fail(msg):
    print(f"aoarm: error: {msg}", file=sys.stderr)
    sys.exit(2)

  try:
    with open(a.frontier_json) as f:
      rows = json.load(f)
  except OSError as e:
    fail(f"{a.frontier_json}: cannot be read ({e.strerror})")
  except ValueError:
    fail(f"{a.frontier_json}: not a JSON file")
  if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
    fail(f"{a.frontier_json}: not a frontier JSON (a list of rows, from aoarm.tools.gen_eval)")
  models = [r for r in rows if r.get("variant") != "data"]
  keys = set.intersection(*(set(r) for r in models)) if models else set()
  key = a.key or ("gen_perplexity" if "gen_perplexity" in keys else "valid_words")
  if key not in keys:
    numeric = sorted(k for k in keys if isinstance(models[0].get(k), float)) if models else []
    fail(f"--key={key}: not in every row of {a.frontier_json}; its keys: {', '.join(numeric)}")
  print(matched_table(rows, key))
  print()
  print(seed_table(rows, key))


if __name__ == "__main__":
  main()
