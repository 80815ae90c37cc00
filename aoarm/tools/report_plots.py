"""The report's plots (`aoarm.tools.report`): bits against L with their intervals, and the attention
diagnostics against L."""

import collections

from aoarm.tools import evidence


def plot(rows, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  rs = [r for r in rows if r["order"] == "random"]
  for lab in sorted({r["label"] for r in rs}):
    Ls = sorted({r["seq_len"] for r in rs if r["label"] == lab})
    st = [evidence.level([r for r in rs if r["label"] == lab and r["seq_len"] == L]) for L in Ls]
    ax.errorbar(
      Ls, [s.mean for s in st], yerr=[s.half for s in st], marker="o", capsize=3, label=lab
    )
  ax.set_xscale("log", base=2)
  ax.set_xlabel("sequence length L")
  ax.set_ylabel("held-out bits/char (random order)")
  ax.set_title("held-out bits per token against L (± 95% t over seeds; 1 seed: ± SE)", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_attention(rows, path, m: int = 4):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rs = [r for r in rows if r["order"] == "random" and r["diagnostics"]]
  if not rs:
    return False
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  series = collections.defaultdict(list)
  for r in rs:
    for stream, s in r["diagnostics"].items():
      se = [1.96 * s.get(f"{k}_{m}_stderr", 0.0) for k in ("structural", "semantic")]
      series[(r["label"], stream)].append(
        (r["seq_len"], s[f"structural_{m}"], s[f"semantic_{m}"], s[f"uniform_{m}"], *se)
      )
  for (lab, stream), pts in sorted(series.items()):
    pts.sort()
    Ls = [p[0] for p in pts]
    for ax, i, name in ((axes[0], 1, "structural"), (axes[1], 2, "semantic")):
      # +- 1.96 standard errors over windows where the diagnostics carry them (0 where not)
      err = [p[i + 3] for p in pts]
      ax.errorbar(
        Ls, [p[i] for p in pts], yerr=err, marker="o", capsize=2, label=f"{lab} [{stream}]"
      )
      ax.set_title(f"{name}: attention mass on {m} {'most recent' if i == 1 else 'nearest'} rows")
  for ax in axes:  # the uniform baseline: the mass a uniform attention puts on any m rows
    ax.plot(Ls, [p[3] for p in pts], "k:", label="uniform attention")
  for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length L")
  axes[0].set_ylabel(f"mass (m={m})")
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return True
