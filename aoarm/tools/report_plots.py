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


def validation_curves(sweep_dir: str, rows) -> dict:
  """{(base label, L): {run: [(step, loss)]}}: each reported run's in-training held-out loss
  (train.eval_every; nats/token) from its metrics.jsonl; runs without one are left out."""
  import json
  import os

  out = {}
  for run in sorted({r["run"] for r in rows}):
    r = next(x for x in rows if x["run"] == run)
    path = os.path.join(sweep_dir, run, "metrics.jsonl")
    if not os.path.isfile(path):
      continue
    points = {}
    with open(path, encoding="utf-8") as f:
      for line in f:
        m = json.loads(line)
        key = next((k for k in m if k.startswith("eval/") and k.endswith("_nll")), None)
        if key:
          points[m["step"]] = m[key]  # a resumed run's repeat of a step: the later line
    if len(points) > 1:  # more than the final eval's
      base = r["label"].split(" [")[0]
      out.setdefault((base, r["seq_len"]), {})[run] = sorted(points.items())
  return out


def plot_curves(sweep_dir: str, rows, path) -> bool:
  """The validation curves (one panel per L, one colour per arm, one line per seed); False
  where no run has one."""
  curves = validation_curves(sweep_dir, rows)
  if not curves:
    return False
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  Ls = sorted({L for _, L in curves})
  arms = sorted({lab for lab, _ in curves})
  colour = {lab: f"C{i}" for i, lab in enumerate(arms)}
  fig, axes = plt.subplots(1, len(Ls), figsize=(6 * len(Ls), 4.2), squeeze=False)
  for ax, L in zip(axes[0], Ls):
    for lab in arms:
      for i, pts in enumerate(curves.get((lab, L), {}).values()):
        steps, loss = zip(*pts)
        ax.plot(steps, loss, color=colour[lab], lw=1, label=lab if i == 0 else None)
    ax.set_title(f"L = {L}: in-training held-out loss, one line per seed", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("nats/token")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return True
