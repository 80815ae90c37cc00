"""The report's plots (`aoarm.tools.report`): bits against L with their intervals, and the attention
diagnostics against L."""

from aoarm.tools import evidence, report_tables


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

  levels = report_tables.attention_levels(rows, m)
  if not levels:
    return False
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  uniform = {}  # the mass a uniform attention puts on any m rows, per L
  for r in rows:
    for s in (r.get("diagnostics") or {}).values():
      uniform.setdefault(r["seq_len"], s.get(f"uniform_{m}"))
  for lab, stream, name in sorted(levels):
    ax = axes[0] if name == "structural" else axes[1]
    by_L = levels[(lab, stream, name)]
    Ls = sorted(by_L)
    # the mean over seeds ± 95% t (one seed: ± its standard error over windows)
    ax.errorbar(
      Ls,
      [by_L[L].mean for L in Ls],
      yerr=[by_L[L].half for L in Ls],
      marker="o",
      capsize=2,
      label=f"{lab} [{stream}]",
    )
  for ax, name in ((axes[0], "structural"), (axes[1], "semantic")):
    what = "most recent" if name == "structural" else "nearest"
    ax.set_title(f"{name}: attention mass on {m} {what} rows")
    Ls = sorted(L for L, u in uniform.items() if u is not None)
    ax.plot(Ls, [uniform[L] for L in Ls], "k:", label="uniform attention")
  for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length L")
  axes[0].set_ylabel(f"mass (m={m})")
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return True
