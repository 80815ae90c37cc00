"""aoarm command line: python -m aoarm.main --config=configs/<variant>.py[:arg] --workdir=DIR
[--mode=train|eval|sample] [--config.a.b=value ...]"""

import errno
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/<variant>.py[:arg]")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, eval)")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "what to do")
_COORD = flags.DEFINE_string("coordinator", "", "several processes: HOST:PORT of process 0")
_NPROC = flags.DEFINE_integer("num_processes", 0, "several processes: how many")
_PID = flags.DEFINE_integer("process_id", -1, "several processes: this one's id, 0..N-1")
_JOIN_TIMEOUT = flags.DEFINE_integer("join_timeout", 300, "seconds to wait for all processes")


WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES}


def _quiet_failed_read_noise(hook=sys.unraisablehook):
  """After a checkpoint read fails, Orbax's TensorStore futures print a traceback each (dozens:
  asyncio's "exception was never retrieved", and callbacks hitting the closed event loop). The
  failure itself is reported on one line; drop only those two kinds of message."""

  def quiet(u):
    if isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed":
      return
    hook(u)

  sys.unraisablehook = quiet

  def keep(record):
    return "exception was never retrieved" not in record.getMessage()

  logging.getLogger("asyncio").addFilter(keep)


def main(argv):
  del argv
  from aoarm.infra import interrupts

  interrupts.exit_on_sigint()  # until training installs its save-then-exit handler
  _quiet_failed_read_noise()

  from aoarm.infra.checkpointing import CheckpointSaveError
  from aoarm.infra.errors import Interrupted, UserError

  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
  for noisy in ("absl", "jax", "jax._src.xla_bridge", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  cfg = _CONFIG.value
  try:
    from aoarm.infra import distributed  # before any computation (aoarm/infra/distributed.py)

    distributed.join(
      distributed.settings(_COORD.value, _NPROC.value, _PID.value), _JOIN_TIMEOUT.value
    )
    from aoarm.config import cli_flags, run_config

    mode = _MODE.value
    if cfg is None and mode in ("eval", "sample"):  # the run's own config: --workdir is enough
      cfg = run_config.from_workdir(_WORKDIR.value, cli_flags.BARE_OVERRIDES, mode)
    if cfg is None:
      raise UserError("--config is required, e.g. --config=configs/two_stream.py:runlocal")
    try:
      cfg.model  # noqa: B018 - a config file that failed to load raises on first access
    except OSError:
      given = [a for a in sys.argv if a.startswith("--config=")]
      raise UserError(
        f"cannot load {given[0] if given else '--config'}: no such file, or it has no get_config"
      ) from None
    # the config is checked once, in `aoarm.run.setup.prepare`; eval and sample run on the
    # run's saved config with the command line's own keys on top
    explicit = cli_flags.explicit_keys(sys.argv) | set(cli_flags.BARE_OVERRIDES)
    if mode == "sample":
      from aoarm.sample import front

      code = front.sample(cfg, _WORKDIR.value, explicit)
    else:
      from aoarm.run import modes

      if mode == "train":
        code = modes.train(cfg, _WORKDIR.value)
      else:
        code = modes.evaluate_mode(cfg, _WORKDIR.value, explicit)
  except Interrupted as e:
    print(f"aoarm: {e}", file=sys.stderr)
    code = e.code
  except UserError as e:
    print(f"aoarm: error: {e}", file=sys.stderr)
    code = 2
  except OSError as e:
    if e.errno not in WRITE_ERRNOS:
      raise
    # a full disk, a file-size limit (ulimit -f), a read-only or forbidden folder: one line
    print(f"aoarm: error: cannot write {e.filename or 'a file'}: {e.strerror}", file=sys.stderr)
    code = 1
  except CheckpointSaveError as e:
    # Orbax's threads may never let the interpreter shut down after a failed save: exit now.
    print(f"aoarm: error: {e}; the checkpoints saved before it are kept", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
  interrupts.exit_within(120, code)  # a library thread never keeps a finished run alive
  return code


if __name__ == "__main__":
  from aoarm.config.cli_flags import parse_flags

  app.run(main, flags_parser=parse_flags)
