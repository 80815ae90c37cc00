"""Command-line parsing shared by `aoarm.main` and the tools that take a config: absl's parser,
with the kernel knobs' old names mapped to their new ones and every bad flag ending in one line
and exit code 2."""

import sys

from absl import flags


def _new_names(argv):
  """--config.model.norm_impl=X -> --config.model.kernels.norm=X (the knobs' old names, which
  committed results' commands use; `config_lib.apply_aliases` does the same in config files)."""
  from aoarm.config import key_table

  out = []
  for a in argv:
    key, eq, val = a.partition("=")
    old = key.removeprefix("--config.")
    if key.startswith("--config.") and old in key_table.LEGACY:
      new = f"--config.{key_table.LEGACY[old]}"
      print(f"aoarm: note: {key} is now {new} (the old name goes soon)", file=sys.stderr)
      a = f"{new}{eq}{val}"
    out.append(a)
  return out


# --config.KEY=VALUE given without --config (eval or sample of an existing run: applied to the
# run's saved config by `run_config.from_workdir`)
BARE_OVERRIDES: dict = {}


def explicit_keys(argv) -> set:
  """The config keys the command line sets itself (--config.KEY=VALUE or --config.KEY VALUE)."""
  return {a.partition("=")[0][len("--config.") :] for a in argv[1:] if a.startswith("--config.")}


def _reading_mode(argv) -> bool:
  modes = [a.partition("=")[2] for a in argv[1:] if a.startswith("--mode=")]
  if "--mode" in argv:
    i = argv.index("--mode")
    modes += argv[i + 1 : i + 2]
  return bool(modes) and modes[-1] in ("eval", "sample")


def config_keys_help() -> list[str]:
  """'  key = default  # its comment' for every key of `config_lib.base_config`, read from that
  function's source (its comments are the keys' one source of documentation)."""
  import inspect
  import re

  from aoarm.config import config_lib, key_table

  defaults = key_table.flat(config_lib.base_config("", None))
  lines, pending = [], []
  for raw in inspect.getsource(config_lib.base_config).splitlines():
    line = raw.strip()
    if raw.startswith("    ") and not line.startswith("#"):  # inside an `if` (runlocal, size)
      pending = []
      continue
    if line.startswith("#"):
      pending.append(line[1:].strip())
      continue
    m = re.match(r"c\.((?:\w+\.)*\w+) = (.+?)(?:\s+#\s*(.*))?$", line)
    if m and "ConfigDict()" not in m.group(2):
      note = " ".join(pending + [m.group(3) or ""]).strip()
      key = m.group(1)
      value = repr(defaults[key]) if key in defaults and key != "model.variant" else m.group(2)
      lines.append(f"  {key} = {value}" + (f"  # {note}" if note else ""))
    pending = []
  return lines


def _help(argv) -> bool:
  return any(a in ("--help", "-h", "--helpshort", "-?") for a in argv[1:])


def print_help(main_doc: str):
  """The command's usage, its flags and every config key with its default and one line."""
  out = [main_doc.strip(), "", "flags:"]
  for f in flags.FLAGS.get_key_flags_for_module(sys.argv[0]) or []:
    out.append(f"  --{f.name}: {f.help} (default: {f.default!r})")
  out += [
    "",
    "config keys (--config.KEY=VALUE; the defaults before configs/<variant>.py sets its own;",
    "aoarm/config/config_check.py holds each one's allowed range):",
    *config_keys_help(),
  ]
  print("\n".join(out))


def parse_flags(argv):
  """absl's parser, but a bad config file, arg or override ends in one line and exit 2. Without
  --config, --mode=eval/sample takes --config.KEY=VALUE overrides for the run's saved config."""
  argv = _new_names(argv)
  if _help(argv):
    import __main__

    print_help(getattr(__main__, "__doc__", "") or "")
    sys.exit(0)
  sys.argv[1:] = argv[1:]  # ml_collections reads the overrides from sys.argv as well
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  has_config = any(a == "--config" or a.startswith("--config=") for a in argv[1:])
  if overrides and not has_config and _reading_mode(argv):
    for a in argv[1:]:
      if a.startswith("--config."):
        key, eq, value = a[len("--config.") :].partition("=")
        if not eq:
          print(f"aoarm: error: --config.{key}: give it as --config.{key}=VALUE", file=sys.stderr)
          sys.exit(2)
        BARE_OVERRIDES[key] = value
    argv = [a for a in argv if not a.startswith("--config.")]
    sys.argv[1:] = argv[1:]
  elif overrides and not has_config:
    print(
      f"aoarm: error: {overrides[0]} needs --config=configs/<variant>.py[:arg] to override",
      file=sys.stderr,
    )
    sys.exit(2)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - flags.Error, and what a config file raises
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # a config file's own exception arrives as a traceback text: its last line is the message
    msg = lines[-1] if any(ln.startswith("Traceback") for ln in lines) else " ".join(lines)
    if isinstance(e, (AttributeError, KeyError)):  # an override naming no config field
      msg = "unknown config key: " + msg.replace("\\n", " ").replace("\\", "").replace("'", "")
    print(f"aoarm: error: {msg}", file=sys.stderr)
    sys.exit(2)
