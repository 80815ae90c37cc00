"""Ctrl-C and SIGTERM: stop training at the next step boundary with a checkpoint; a second signal
exits at once. Also a bound on how long the process may take to exit.

A Python KeyboardInterrupt raised while XLA compiles, or while Orbax's threads run, can crash
the interpreter or leave it waiting on threads forever; so during training neither signal raises:
the handler records it and the loop saves and returns. Python runs a signal handler only when
the main thread is between bytecodes, which a thread waiting on the device or the compiler is
not (for minutes, on a CPU); so the signals are also read from a wakeup pipe by a watcher
thread, which records the first at once and ends the process on the second at once. SIGTERM (a
scheduler's preemption) exits 0; SIGINT exits 130, so `train && eval` does not go on as if
training had finished. In eval and sample, where nothing is worth saving, Ctrl-C ends the
process at once.
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
    self.preparing = False  # data and setup: no step to stop at, nothing to save yet

  def handle(self, signum, frame):
    if self.signum is not None:
      os.write(2, b"aoarm: second interrupt: exiting now, without saving\n")
      os._exit(128 + signum)
    self.signum = signum
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    if self.preparing:
      log.warning("%s: stopping before training (again to exit at once)", name)
      return
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
  watcher = _Watcher(stop)
  # with the watcher the Python-level handler only keeps the default action away (the watcher
  # handles each signal, once); without it (no wakeup fd) the handler does the work
  handler = (lambda signum, frame: None) if watcher.active else stop.handle
  old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  _active = stop
  try:
    yield stop
  finally:
    _active = None
    watcher.close()
    for s, h in old.items():
      signal.signal(s, h)


class _Watcher:
  """Reads signal numbers from the interpreter's wakeup fd in a thread of its own: a stop is
  recorded (and a second one exits) while the main thread is still blocked in C++."""

  def __init__(self, stop: Stop):
    self.r, self.w = os.pipe()
    os.set_blocking(self.w, False)
    self.active = False
    try:
      self.old_fd = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
      self.old_fd = None
      return
    self.active = True
    self.stop = stop
    self.thread = threading.Thread(target=self._run, name="aoarm-signals", daemon=True)
    self.thread.start()

  def _run(self):
    while True:
      try:
        got = os.read(self.r, 16)
      except OSError:
        return
      if not got:
        return
      for signum in got:
        if signum in (signal.SIGINT, signal.SIGTERM):
          self.stop.handle(signum, None)

  def close(self):
    if self.active:
      signal.set_wakeup_fd(self.old_fd)
    os.close(self.w)  # the watcher reads EOF and ends
    if self.active:
      self.thread.join(timeout=1)
    os.close(self.r)


def check_stop(what: str):
  """Where setup runs long (tokenising a corpus): end now if a stop was asked for."""
  if _active is not None and _active.requested:
    from aoarm.infra.errors import Interrupted

    raise Interrupted(f"stopped while {what}: nothing of it was kept", _active.exit_code or 130)


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
