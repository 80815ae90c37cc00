"""The run directory's safety: an exclusive training lock, writability checked before any work,
files written atomically, and damaged checkpoints moved aside (never deleted).

The lock is `DIR/train.lock`, held with `fcntl.flock` for the life of the trainer: the kernel
drops it when the process dies, so a lock left by a killed run never blocks a restart. The file
records host, pid and start time, which a refused second trainer prints. Where the filesystem has
no flock (some network filesystems), the recorded pid is checked instead: a lock from a live
process on this host, or from another host, is refused; one from a dead pid here is taken over.
"""

import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile

from aoarm.infra.errors import UserError

LOCK_NAME = "train.lock"
ASIDE_DIR = "ckpt_aside"  # damaged or incomplete checkpoint steps are moved here


def check_dir(path: str, what: str, must_exist: bool = False):
  """`path` is a directory (or can be created as one) and this process can write there; checked
  by creating and removing a temporary file in the nearest existing folder (permission bits
  alone do not tell: root ignores them, a read-only mount does not)."""
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{what} {path} exists and is not a directory")
  if must_exist and not os.path.isdir(path):
    raise UserError(f"{what} {path} does not exist")
  probe = path
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise UserError(f"{what} {path} cannot be created: {probe} is not a directory")
  try:
    fd, tmp = tempfile.mkstemp(dir=probe, prefix=".aoarm-write-check-")
    os.close(fd)
    os.remove(tmp)
  except OSError as e:
    raise UserError(f"{what} {path} is not writable ({probe}: {e.strerror})") from None


def file_sha256(path: str) -> str:
  """SHA-256 of a file's bytes, read in blocks (bounded memory)."""
  import hashlib

  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def write_atomic(path: str, text: str | bytes):
  """Write `text` (or bytes) to `path` so that a reader sees the old file or the whole new one,
  never a part: a temporary file in the same folder, flushed to disk, then renamed over `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
  try:
    binary = isinstance(text, bytes)
    with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


# what aoarm writes in a run folder (docs in aoarm/run/setup.py); anything else marks a folder that
# is not an aoarm run
RUN_ENTRIES = {
  "config.json", "vocab.json", LOCK_NAME, "ckpt", ASIDE_DIR, "metrics.jsonl", "tb", "eval",
  "samples", "cache", "profile", "diagnostics",
}  # fmt: skip
RUN_FILES = ("config.json", "vocab.json", "metrics.jsonl", LOCK_NAME)  # regular files, or absent


def is_run_config(path: str) -> bool:
  """`path` holds a config.json that aoarm wrote (its sections and a model variant)."""
  try:
    with open(path, encoding="utf-8") as f:
      cfg = json.load(f)
  except (OSError, ValueError):
    return False
  return (
    isinstance(cfg, dict)
    and all(isinstance(cfg.get(k), dict) for k in ("model", "data", "train", "eval"))
    and "variant" in cfg["model"]
  )


def check_run_folder(workdir: str):
  """Training into `workdir` replaces no one else's files: it is absent, empty, or an aoarm run
  (its config.json is aoarm's, or it holds only what aoarm writes; hidden files aside), and
  the run's own files are regular files (a FIFO would block every reader)."""
  if not os.path.isdir(workdir):
    return
  for name in RUN_FILES:
    p = os.path.join(workdir, name)
    if os.path.lexists(p) and not os.path.isfile(p):
      raise UserError(f"{p} is not a regular file (a FIFO, device or folder): move it aside")
  entries = [e for e in os.listdir(workdir) if not e.startswith(".")]
  cfg = os.path.join(workdir, "config.json")
  if os.path.exists(cfg) and not is_run_config(cfg):
    raise UserError(
      f"--workdir {workdir} holds a config.json that is not an aoarm run's: training would "
      "replace its files; use a new or empty folder"
    )
  foreign = sorted(set(entries) - RUN_ENTRIES)
  if foreign and not os.path.exists(cfg):
    listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    raise UserError(
      f"--workdir {workdir} is not empty and not an aoarm run (it holds {listed}): training "
      "writes config.json, metrics.jsonl, ckpt/ ... there; use a new or empty folder"
    )


def pid_alive(pid: int) -> bool:
  """A process of this pid runs on this host (one of another user's counts)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _describe(holder: dict) -> str:
  return (
    f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
    f"started {holder.get('started', '?')}"
  )


class TrainLock:
  """`with TrainLock(workdir):` the one trainer of this workdir (process 0 of a run takes it)."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    self.path = os.path.join(self.workdir, LOCK_NAME)
    self._fd = None

  def _read_holder(self) -> dict:
    try:
      with open(self.path, encoding="utf-8") as f:
        return json.load(f)
    except (OSError, ValueError):
      return {}

  def _refuse(self, holder: dict):
    raise UserError(
      f"another training run holds {self.path} ({_describe(holder)}); two trainers in one "
      "workdir would overwrite each other's checkpoints. Wait for it, stop it, or use another "
      "--workdir"
    )

  def acquire(self):
    os.makedirs(self.workdir, exist_ok=True)
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        os.close(fd)
        self._refuse(self._read_holder())
      except OSError as e:  # no flock here: fall back to the recorded pid
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
          os.close(fd)
          raise
        holder = self._read_holder()
        here = holder.get("host") == socket.gethostname()
        if holder and (not here or pid_alive(int(holder.get("pid", -1)))):
          os.close(fd)
          self._refuse(holder)
      # the file may have been removed (and re-created) by the holder releasing it meanwhile
      try:
        same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    holder = {
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    self._fd = fd
    return self

  def release(self):
    if self._fd is None:
      return
    try:
      os.remove(self.path)  # still locked, so no other trainer holds this inode
    except OSError:
      pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def move_aside(workdir: str, step_dir: str, reason: str) -> str:
  """Move a checkpoint step folder to DIR/ckpt_aside/ (never delete it); returns where it went.
  A note beside it says why."""
  aside = os.path.join(workdir, ASIDE_DIR)
  os.makedirs(aside, exist_ok=True)
  stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
  dest = os.path.join(aside, f"step_{os.path.basename(step_dir)}_{stamp}")
  n = 1
  while os.path.exists(dest):
    n += 1
    dest = os.path.join(aside, f"step_{os.path.basename(step_dir)}_{stamp}_{n}")
  os.rename(step_dir, dest)
  write_atomic(dest + ".reason.txt", reason + "\n")
  return dest
