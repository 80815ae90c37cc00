"""Prepare a run's data without training: tokenizer and token stores, then a summary.

  python -m aoarm.tools.prepare_data --config=configs/two_stream.py --workdir=DIR \
      [--config.data.x=y]

For a pod or a sweep: prepare once (the stores land in data.cache_dir, default DIR/cache), then
launch every run with the same data settings and cache; none tokenises again.
"""

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/<variant>.py[:arg]")
_WORKDIR = flags.DEFINE_string("workdir", None, "the run directory (its cache/ holds the stores)")


def summary(data) -> dict:
  tok = data.tokenizer
  out = {"tokenizer": tok.kind, "vocab_size": tok.vocab_size, "splits": {}}
  for name, split in data.splits.items():
    row = {"tokens": int(len(split))}
    if hasattr(split, "manifest"):
      m = split.manifest
      row.update(store=split.path, shards=len(m["shards"]), bytes=m["num_bytes"], dtype=m["dtype"])
      row["bytes_per_token"] = round(m["num_bytes"] / max(m["num_tokens"], 1), 3)
    out["splits"][name] = row
  return out


def main(argv):
  del argv
  import logging

  from aoarm import data as data_lib
  from aoarm.config import config_check, config_lib
  from aoarm.infra.errors import UserError

  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
  cfg = _CONFIG.value
  try:
    if cfg is None:
      raise UserError("--config is required, e.g. --config=configs/two_stream.py")
    if not _WORKDIR.value and not cfg.data.cache_dir:
      raise UserError("--workdir (or --config.data.cache_dir) is required: the stores go there")
    config_lib.apply_aliases(cfg)
    config_check.validate(cfg)
    cache = os.path.abspath(cfg.data.cache_dir or os.path.join(_WORKDIR.value, "cache"))
    data = data_lib.load(cfg.data, cache)
    data.commit_cache()
  except UserError as e:
    print(f"aoarm: error: {e}", file=sys.stderr)
    return 2
  print(json.dumps(summary(data), indent=1))
  return 0


if __name__ == "__main__":
  from aoarm.config.cli_flags import parse_flags

  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
