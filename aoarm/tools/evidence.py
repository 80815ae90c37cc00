"""The statistics of a report (`aoarm.tools.report`): a level over seeds and a gap between two arms,
each with the interval a reviewer asks for.

- A level over n >= 2 seeds: the mean ± the half-width of its Student-t 95% interval (n − 1
  degrees of freedom). One seed: its value ± the eval's standard error across windows, marked
  as one seed (that error says nothing about seed-to-seed spread).
- A gap between two arms that share n >= 2 seeds: the mean of the per-seed differences over the
  shared seeds ± its t 95% half-width (seed-paired; said where one arm ran more seeds). Within
  one seed, where both evals saved their per-window NLLs on the same windows
  (`eval/<name>.npz`), the window-paired difference ± its standard error; else the two standard
  errors combined, said so.
- The trend of a gap between two lengths: per seed, gap(L2) − gap(L1), then as above.
- Over three or more lengths, per seed: the least-squares slope of the gap against log2 L (bits
  per doubling of L) and the gap's mean over the lengths, then as above (the seeds that ran
  every arm at every length; n >= 2).
"""

import dataclasses
import math
import os

import numpy as np
from scipy import stats

LN2 = math.log(2)


@dataclasses.dataclass(frozen=True)
class Stat:
  mean: float
  half: float  # ± this (a 95% t half-width, or one standard error: see `how`)
  n: int  # seeds (or runs) behind it
  how: str  # what `half` is

  def text(self, digits: int = 4, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(self.mean)} ± {self.half:.{digits}f} ({self.how})"


def t_half(x) -> float:
  """Half-width of the Student-t 95% interval of the mean of `x` (n - 1 degrees of freedom)."""
  x = np.asarray(x, np.float64)
  n = len(x)
  if n < 2:
    return float("nan")
  return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


def level(runs) -> Stat | None:
  """The cell's level: rows of one arm at one L (dicts with bits, stderr_bits, seed)."""
  if not runs:
    return None
  b = [r["bits"] for r in runs]
  seeds = len({r["seed"] for r in runs})
  if len(b) == 1:
    return Stat(b[0], runs[0]["stderr_bits"], 1, "1 seed: window SE")
  many = f"{len(b)} runs, {seeds} seed{'s' if seeds > 1 else ''}" if seeds < len(b) else ""
  return Stat(float(np.mean(b)), t_half(b), len(b), f"{many or f'n={len(b)}'}, 95% t")


def _by_seed(runs) -> dict | None:
  """{seed: row} where each seed has exactly one run; else None."""
  out = {r["seed"]: r for r in runs}
  return out if len(out) == len(runs) else None


def per_window_bits(row) -> np.ndarray | None:
  """The row's per-window NLLs in bits (its eval's .npz, this order), or None."""
  path = row.get("per_window", "")
  if not path or not os.path.isfile(path):
    return None
  with np.load(path) as z:
    key = f"nll_{row['order_key']}"
    return z[key] / LN2 if key in z else None


def gap(runs, refs) -> Stat | None:
  """runs − refs (bits), paired by seed where the two arms share >= 2 seeds."""
  if not runs or not refs:
    return None
  per, note = _seed_gaps([(0, runs, refs)], "both")
  if per:
    return _seed_paired([g for ((_, g),) in per.values()], note)
  if len(runs) == 1 and len(refs) == 1:
    x, y = per_window_bits(runs[0]), per_window_bits(refs[0])
    if x is not None and y is not None and len(x) == len(y) and x.size > 1:
      d = x - y
      se = float(d.std(ddof=1) / math.sqrt(len(d)))
      return Stat(float(d.mean()), se, 1, f"1 seed: window-paired SE, {len(d)} windows")
  ma, mb = level(runs), level(refs)
  seeds = "1 seed" if len(runs) == len(refs) == 1 else "seeds not paired"
  return Stat(ma.mean - mb.mean, math.hypot(ma.half, mb.half), 1, f"{seeds}: unpaired")


def trend(runs1, refs1, runs2, refs2) -> Stat | None:
  """gap at the second length − gap at the first, paired by seed over the seeds all four cells
  ran (>= 2; said where some cell ran more); None otherwise."""
  per, note = _seed_gaps([(1, runs1, refs1), (2, runs2, refs2)], "all")
  if not per:
    return None
  return _seed_paired([g2 - g1 for (_, g1), (_, g2) in per.values()], note)


def _seed_gaps(cells, word: str):
  """({seed: [(L, gap)]}, note): per seed, runs − refs (bits) in each of `cells` = [(L, runs,
  refs)], over the seeds that both arms of every cell ran (one run each), in seed order; `note`
  names how many where some arm ran more (`word`: 'both', 'all'). (None, '') where fewer than
  two seeds are shared."""
  by = [(L, _by_seed(a) if a else None, _by_seed(b) if b else None) for L, a, b in cells]
  if not by or any(a is None or b is None for _, a, b in by):
    return None, ""
  seeds = sorted(set.intersection(*(set(a) & set(b) for _, a, b in by)))
  if len(seeds) < 2:
    return None, ""
  more = any(len(c) > len(seeds) for _, a, b in by for c in (a, b))
  note = f" (the {len(seeds)} seeds {word} ran)" if more else ""
  return {s: [(L, a[s]["bits"] - b[s]["bits"]) for L, a, b in by] for s in seeds}, note


def _seed_paired(d, note: str = "") -> Stat:
  """The mean of per-seed differences `d` ± its t 95% half-width."""
  return Stat(float(np.mean(d)), t_half(d), len(d), f"seed-paired, n={len(d)}{note}, 95% t")


def slope(cells) -> Stat | None:
  """The gap's change per doubling of L: per seed the least-squares slope of runs − refs against
  log2 L over `cells` = [(L, runs, refs)] (three or more lengths), then the mean over seeds ±
  its t 95% half-width. None where the lengths or seeds do not allow it."""
  per, note = _seed_gaps(cells, "all") if len(cells) >= 3 else (None, "")
  if per is None:
    return None
  d = [
    float(np.polyfit([math.log2(L) for L, _ in g], [x for _, x in g], 1)[0]) for g in per.values()
  ]
  return _seed_paired(d, note)


def mean_over_lengths(cells) -> Stat | None:
  """The gap averaged over the lengths of `cells` (as `slope`), per seed, then over seeds."""
  per, note = _seed_gaps(cells, "all") if len(cells) >= 3 else (None, "")
  if per is None:
    return None
  return _seed_paired([float(np.mean([x for _, x in g])) for g in per.values()], note)
