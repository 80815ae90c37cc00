"""Running `python -m aoarm.main` as a user would, for tests of command-line behaviour."""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.model.num_layers=1", "--config.model.d_model=32"]


def snapshot(path):
  """{relative file: (size, mtime)} of every file under `path` (None if it does not exist)."""
  if not os.path.exists(path):
    return None
  if not os.path.isdir(path):
    st = os.stat(path)
    return {".": (st.st_size, st.st_mtime_ns)}
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      st = os.lstat(p)  # a link as itself (a dangling one too)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
  return out


def args(workdir, *flags, config="configs/two_stream.py:runlocal", tiny=True):
  out = [sys.executable, "-m", "aoarm.main"]
  if config:
    out.append(f"--config={config}")
  out.append(f"--workdir={workdir}")
  return out + (TINY if tiny else []) + list(flags)


def run(workdir, *flags, timeout=300, prefix=(), **kw):
  return subprocess.run(
    [*prefix, *args(workdir, *flags, **kw)], cwd=REPO, capture_output=True, text=True,
    timeout=timeout,
  )  # fmt: skip


def spawn(workdir, *flags, **kw):
  """A training process in the background (stdout+stderr to one pipe)."""
  return subprocess.Popen(
    args(workdir, *flags, **kw), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    text=True,
  )  # fmt: skip


def error_lines(stderr: str) -> list[str]:
  return [ln for ln in stderr.strip().splitlines() if ln.startswith("aoarm: error:")]


def expect_error(workdir, match, *flags, watch=None, **kw):
  """The command fails with exit 2, one `aoarm: error:` line containing `match`, no traceback,
  and the workdir (or `watch`) exactly as it was."""
  watch = watch or workdir
  before = snapshot(watch)
  res = run(workdir, *flags, **kw)
  lines = error_lines(res.stderr)
  assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
  assert len(lines) == 1, res.stderr[-3000:]
  assert match in lines[0], lines[0]
  assert "Traceback" not in res.stderr, res.stderr[-3000:]
  assert snapshot(watch) == before
  return lines[0]


def wait_for(predicate, timeout=120.0, proc=None, what="condition"):
  """Poll until predicate() is true; fail if `proc` ends first or the time runs out."""
  end = time.time() + timeout
  while time.time() < end:
    if predicate():
      return
    if proc is not None and proc.poll() is not None:
      raise AssertionError(
        f"process ended (rc {proc.returncode}) before {what}: {proc.stdout.read()[-3000:]}"
      )
    time.sleep(0.05)
  raise AssertionError(f"timed out waiting for {what}")
