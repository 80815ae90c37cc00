"""The config: what a run is, and which changes to it are allowed.

- `config_lib`: the base config of every variant (`base_config`), sizes, aliases, casting.
- `key_table`: the one table that classes every config key (experiment, implementation,
  eval/sample, logging) with its legacy names; every list of keys elsewhere derives from it.
- `config_check`: the rules (types, ranges, choices) and `validate`.
- `run_config`: the config an eval or sample runs on (the run's saved `config.json`).
- `cli_flags`: the command line (`--config.KEY=VALUE`, legacy names, `--help`).
- `resume`: what a resumed run may and may not change.
"""
