#!/usr/bin/env bash
# Run a config's sweep on this machine, one run after another (a rerun skips finished runs and
# resumes unfinished ones). Extra arguments are passed to every run, e.g. data paths:
#   bash launch/local.sh configs/length_sweep.py runs/length_sweep --config.data.train_path=...
set -euo pipefail
config=$1; dir=$2; shift 2
python3 launch/sweep.py --config="$config" --sweep_dir="$dir" --runner=local -- "$@"
python3 -m aoarm.tools.report "$dir"
