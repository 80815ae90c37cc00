"""Ctrl-C and SIGTERM: stop training at the next step boundary with a checkpoint; a second signal
exits at once. Also a bound on how long the process may take to exit.

A Python KeyboardInterrupt raised while XLA compiles, or while Orbax's threads run, can crash
the interpreter or leave it waiting on threads forever; so during training neither signal raises:
the handler records it and the loop saves and returns. SIGTERM (a scheduler's preemption) exits
0; SIGINT exits 130, so `train && eval` does not go on as if training had finished. In eval and
sample, where nothing is worth saving, Ctrl-C ends the process at once.
"""

import contextlib
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("aoarm")
_active = None


class Stop:
  """Records the first SIGTERM/SIGINT; a second one exits the process at once."""

  def __init__(self):
    self.signum = None

  def handle(self, signum, frame):
    if self.signum is not None:
      os.write(2, b"aoarm: second interrupt: exiting now, without saving\n")
      os._exit(128 + signum)
    self.signum = signum
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    log.warning(
      "%s: saving a checkpoint and exiting at the next step boundary (again to exit at once)", name
    )

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def exit_code(self) -> int:
    return 0 if self.signum in (None, signal.SIGTERM) else 128 + signal.SIGINT


@contextlib.contextmanager
def catch():
  """Inside: SIGTERM and SIGINT request a stop (nested uses share one `Stop`). Outside the main
  thread signals cannot be caught; the `Stop` is then never set."""
  global _active
  if _active is not None:
    yield _active
    return
  stop = Stop()
  if threading.current_thread() is not threading.main_thread():
    yield stop
    return
  old = {s: signal.signal(s, stop.handle) for s in (signal.SIGTERM, signal.SIGINT)}
  _active = stop
  try:
    yield stop
  finally:
    _active = None
    for s, h in old.items():
      signal.signal(s, h)


def exit_on_sigint():
  """eval / sample: Ctrl-C ends the process at once (exit 130), nothing half-written kept."""

  def handle(signum, frame):
    os.write(2, b"aoarm: interrupted\n")
    os._exit(128 + signum)

  signal.signal(signal.SIGINT, handle)


def exit_within(seconds: float, code: int):
  """Make sure the process ends within `seconds` with `code`, even if a library's threads would
  keep the interpreter from shutting down (Orbax's after a failed save)."""

  def force():
    sys.stderr.flush()
    os.write(2, f"aoarm: exit took over {seconds:.0f} s; forcing it\n".encode())
    os._exit(code)

  t = threading.Timer(seconds, force)
  t.daemon = True
  t.start()
