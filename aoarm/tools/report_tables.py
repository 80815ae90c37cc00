"""The report's tables of gathered rows (`aoarm.tools.report.gather`): levels per cell, and gaps
to a reference row, each row compared within its own eval scope."""

from aoarm.tools import evidence


def _cells(rows, order):
  rs = [r for r in rows if r["order"] == order]
  Ls = sorted({r["seq_len"] for r in rs})

  def runs(lab, L):
    return [r for r in rs if r["label"] == lab and r["seq_len"] == L]

  return rs, Ls, runs


def table(rows, order: str) -> str:
  """Levels: mean over seeds ± the 95% t half-width, n on every cell (evidence.level)."""
  rs, Ls, runs = _cells(rows, order)
  out = ["| variant | " + " | ".join(f"L={L}" for L in Ls) + " |", "|---|" + "---|" * len(Ls)]
  for lab in sorted({r["label"] for r in rs}):
    cells = [evidence.level(runs(lab, L)) for L in Ls]
    out.append(f"| {lab} | " + " | ".join(c.text() if c else "" for c in cells) + " |")
  return "\n".join(out)


def in_scope(label: str, scope: str, labels) -> str:
  """`label` as a row of the eval scope `scope`: 'LABEL' -> 'LABEL [test, ...]' where
  that is a row (a label given with its scope, or a scope-less row, stays as it is)."""
  scoped = f"{label} [{scope}]"
  return scoped if scope and scoped in labels else label


def known_label(label: str, rows) -> bool:
  """Whether `label` names rows: a row's label, or a label whose rows all carry a scope."""
  return any(r["label"] in (label, f"{label} [{r['scope']}]") for r in rows)


def gap_table(rows, order: str, ref: str, base: str = "") -> str:
  """Each row's gap to the row labelled `ref` (bits - ref's bits: evidence.gap), the trend of
  the gap from the shortest L to the longest (evidence.trend), over three or more lengths its
  slope per doubling of L and its mean over L (evidence.slope, mean_over_lengths), and with
  `base`, the share of base's gap that the row closes (100%: level with ref; wider than base's:
  'widens Nx'). A row is compared with `ref`'s row of the same eval scope (test split, best
  checkpoint, ...) only."""
  rs, Ls, runs = _cells(rows, order)
  cols = [f"L={L}: gap to {ref}" for L in Ls]
  if len(Ls) > 1:
    cols.append(f"gap at L={Ls[-1]} − gap at L={Ls[0]}")
  if len(Ls) > 2:
    cols += ["slope per doubling of L", "mean gap over L"]
  out = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  labels = {r["label"] for r in rs}
  scope_of = {r["label"]: r["scope"] for r in rs}
  for lab in sorted(labels):
    ref_lab = in_scope(ref, scope_of[lab], labels)
    base_lab = in_scope(base, scope_of[lab], labels) if base else ""
    if lab == ref_lab or ref_lab not in labels:
      continue
    cells = []
    for L in Ls:
      g = evidence.gap(runs(lab, L), runs(ref_lab, L))
      if g is None:
        cells.append("")
        continue
      text = g.text(3, sign=True)
      gb = evidence.gap(runs(base_lab, L), runs(ref_lab, L)) if base and lab != base_lab else None
      if gb is not None and gb.mean > 0:
        closed = 1 - g.mean / gb.mean
        text += f" (closes {closed:.0%})" if closed >= 0 else f" (widens {g.mean / gb.mean:.1f}x)"
      cells.append(text)
    if len(Ls) > 1:
      t = evidence.trend(
        runs(lab, Ls[0]), runs(ref_lab, Ls[0]), runs(lab, Ls[-1]), runs(ref_lab, Ls[-1])
      )
      cells.append(t.text(3, sign=True) if t else "")
    if len(Ls) > 2:
      every = [(L, runs(lab, L), runs(ref_lab, L)) for L in Ls]
      for st in (evidence.slope(every), evidence.mean_over_lengths(every)):
        cells.append(st.text(3, sign=True) if st else "")
    out.append(f"| {lab} | " + " | ".join(cells) + " |")
  return "\n".join(out)


def _diag_runs(rows, m: int):
  """{(label, stream, kind): {L: [level-like dicts over seeds]}} of the runs that carry attention
  diagnostics (once a run, whatever orders its eval has), kind structural or semantic."""
  out, seen = {}, set()
  for r in rows:
    if r["run"] in seen or not r.get("diagnostics"):
      continue
    seen.add(r["run"])
    for stream, s in r["diagnostics"].items():
      for kind in ("structural", "semantic"):
        if f"{kind}_{m}" not in s:
          continue
        cell = {"bits": s[f"{kind}_{m}"], "stderr_bits": s.get(f"{kind}_{m}_stderr", float("nan"))}
        key = (r["label"], stream, kind)
        out.setdefault(key, {}).setdefault(r["seq_len"], []).append({**cell, "seed": r["seed"]})
  return out


def attention_levels(rows, m: int = 4) -> dict:
  """{(label, stream, kind): {L: evidence.Stat}}: the attention mass on the m most recent
  (structural) or nearest (semantic) rows, mean over seeds ± 95% t (one seed: ± its standard
  error over windows), as the levels of `table`."""
  return {
    key: {L: evidence.level(cell) for L, cell in by_L.items()}
    for key, by_L in _diag_runs(rows, m).items()
  }


def attention_table(rows, m: int = 4) -> str:
  """The attention diagnostics of the runs that have them: one row per variant and stream, a
  structural and a semantic column per L; '' when no run has diagnostics."""
  levels = attention_levels(rows, m)
  if not levels:
    return ""
  Ls = sorted({L for by_L in levels.values() for L in by_L})
  head = " | ".join(f"L={L} structural | L={L} semantic" for L in Ls)
  out = [f"| variant [stream] | {head} |", "|---|" + "---|---|" * len(Ls)]
  for lab, stream in sorted({(k[0], k[1]) for k in levels}):
    cells = []
    for L in Ls:
      for kind in ("structural", "semantic"):
        st = levels.get((lab, stream, kind), {}).get(L)
        cells.append(st.text(3) if st else "")
    out.append(f"| {lab} [{stream}] | " + " | ".join(cells) + " |")
  return "\n".join(out)
