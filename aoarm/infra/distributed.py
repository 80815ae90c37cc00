"""Joining the processes of one run (`jax.distributed`), before any JAX computation.

- SLURM, Open MPI and TPU pods: `AOARM_DISTRIBUTED=1` (or SLURM with more than one task), and JAX
  finds the coordinator, the process count and each process's id itself.
- Anywhere else (several processes on one machine, a cluster without a scheduler): give all
  three, as flags of `aoarm.main` or in the environment:
  `--coordinator=HOST:PORT --num_processes=N --process_id=I`
  (`AOARM_COORDINATOR`, `AOARM_NUM_PROCESSES`, `AOARM_PROCESS_ID`). On CPUs the collectives run
  over gloo, so N processes of fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count`)
  behave as N hosts.

A process that never joins, or a coordinator that is gone, ends the others within about
`--join_timeout` seconds (default 300), never a hang. Each process first says on stderr whom it
waits for (`aoarm: joining process I of N at HOST:PORT, waiting up to T s`); XLA's runtime then
ends a failed join itself (SIGABRT, exit 134, its `DEADLINE_EXCEEDED ... RegisterTask` line):
it aborts the process rather than raising, so nothing Python could catch comes first.
"""

import os
import sys

from aoarm.infra.errors import UserError


def settings(coordinator="", num_processes=0, process_id=-1) -> dict | None:
  """The explicit (address, count, id) from flags, else the environment; None where none is
  given (auto-detection or one process). A partial set is refused, naming what is missing."""
  env = os.environ
  addr = coordinator or env.get("AOARM_COORDINATOR", "")
  n = num_processes or int(env.get("AOARM_NUM_PROCESSES", "0") or 0)
  i = process_id if process_id >= 0 else int(env.get("AOARM_PROCESS_ID", "-1") or -1)
  given = {"coordinator": bool(addr), "num_processes": n > 0, "process_id": i >= 0}
  if not any(given.values()):
    return None
  missing = [k for k, ok in given.items() if not ok]
  if missing:
    raise UserError(
      "several processes need --coordinator, --num_processes and --process_id; missing "
      + ", ".join("--" + m for m in missing)
    )
  if ":" not in addr:
    raise UserError(f"--coordinator={addr!r} must be HOST:PORT")
  if not 0 <= i < n:
    raise UserError(f"--process_id={i} must be in [0, {n}) for --num_processes={n}")
  return {"coordinator_address": addr, "num_processes": n, "process_id": i}


def auto_detected() -> bool:
  return os.environ.get("AOARM_DISTRIBUTED") == "1" or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def join(explicit: dict | None, timeout_s: int = 300) -> None:
  """jax.distributed.initialize with bounded waits; a failure to join is one clear error."""
  import jax

  if explicit is None and not auto_detected():
    return
  # CPU collectives over gloo (no backend may start before initialize, so set it always: it
  # concerns only the CPU client)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kw = dict(explicit or {})
  if kw:
    print(
      f"aoarm: joining process {kw['process_id']} of {kw['num_processes']} at "
      f"{kw['coordinator_address']}, waiting up to {timeout_s} s",
      file=sys.stderr,
      flush=True,
    )
  try:
    jax.distributed.initialize(
      **kw,
      initialization_timeout=timeout_s,
      heartbeat_timeout_seconds=max(10, min(100, timeout_s)),
      shutdown_timeout_seconds=max(10, min(300, timeout_s)),
    )
  except Exception as e:  # noqa: BLE001 - any failure to join: one line, not a traceback
    where = kw.get("coordinator_address", "the auto-detected coordinator")
    raise UserError(
      f"could not join {kw.get('num_processes', 'the')} processes at {where} within "
      f"{timeout_s} s: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    ) from None
