"""Where a training process's wall time goes: named phases from the process's own start to its
end, written to DIR/timing.json and logged in one line, so that a sweep's start-up, training and
eval can be told apart (`benchmarks/sweep_cell.py` reads them).

  phases = timing.Phases()      # at the start of --mode=train
  phases.mark("setup")          # the time since the previous mark is the phase `setup`
  phases.write(workdir, extra)  # DIR/timing.json: {"phases_s": {...}, "total_s": ..., ...}
"""

import json
import logging
import os
import time

from aoarm.infra import workdir as workdir_lib

log = logging.getLogger("aoarm")


def process_age_s() -> float:
  """Seconds since this process started (Linux: /proc; elsewhere 0: the first phase then counts
  from the first mark's clock only)."""
  try:
    with open("/proc/self/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
    return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
  except (OSError, ValueError, IndexError):
    return 0.0


class Phases:
  """Consecutive named phases; the first, `start`, is the process's age when this is made
  (interpreter, imports, flags, the config file)."""

  def __init__(self):
    self.phases = {"start": round(process_age_s(), 3)}
    self._last = time.perf_counter()

  def mark(self, name: str) -> float:
    """End the phase `name` now (a name marked twice adds up); returns its seconds."""
    now = time.perf_counter()
    took = now - self._last
    self._last = now
    self.phases[name] = round(self.phases.get(name, 0.0) + took, 3)
    return took

  @property
  def total_s(self) -> float:
    return round(sum(self.phases.values()), 3)

  def write(self, workdir: str, extra: dict | None = None) -> dict:
    """DIR/timing.json (atomically) and one log line; returns what it wrote."""
    out = {"phases_s": dict(self.phases), "total_s": self.total_s, **(extra or {})}
    workdir_lib.write_atomic(
      os.path.join(workdir, "timing.json"),
      json.dumps(out, indent=2),  # phases in order
    )
    log.info(
      "time: %s; total %.1f s",
      ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items()),
      self.total_s,
    )
    return out
