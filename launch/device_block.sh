#!/usr/bin/env bash
# One block of a sweep on a lent single-GPU machine whose disk does not outlive the call:
# runs the sweep entries matching REGEX within SECONDS, then diagnostics and the report, and packs
# every run's small outputs (config, eval, diagnostics, metrics; no checkpoints) into
# $OUT/${TAG:-sweep}.tgz. Unpack the tarballs of several blocks into one directory and run
# `python -m aoarm.tools.report DIR` there. On a machine of two GPUs, run two blocks side by side:
#   CUDA_VISIBLE_DEVICES=0 SWEEP_DIR=/tmp/s0 TAG=gpu0 bash launch/device_block.sh CFG RE0 540 ... &
#   CUDA_VISIBLE_DEVICES=1 SWEEP_DIR=/tmp/s1 TAG=gpu1 bash launch/device_block.sh CFG RE1 540 ... &
#   wait
# Blocks can also share one GPU (each runs slower; issue 17's calls ran three and four at once,
# not timed against one alone): give each a share of its memory, e.g.
# XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 for three blocks.
#   bash launch/device_block.sh configs/length_sweep.py 'mdm_seq_len(128|256)' 420 \
#     --config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt \
#     --config.data.test_path=.data/test.txt
set -uo pipefail
config=$1; regex=$2; seconds=$3; shift 3
dir=${SWEEP_DIR:-/tmp/sweep}
timeout "$seconds" python3 launch/sweep.py --config="$config" --sweep_dir="$dir" --only="$regex" \
  -- "$@" 2>&1 | grep -E '^\[|rror' | cut -c1-160
for d in "$dir"/*/; do
  if [ -d "$d/eval" ] && [ ! -d "$d/diagnostics" ] && [[ $d != *mdm* ]]; then
    timeout "${DIAG_SECONDS:-150}" python3 -m aoarm.tools.diagnostics --workdir="$d" --num_windows=16 > /dev/null 2>&1
  fi
done
python3 -m aoarm.tools.report "$dir" 2>&1 | tail -20
(cd "$dir" && tar czf "${OUT:-/tmp}/${TAG:-sweep}.tgz" \
  $(find . \( -name '*.json' -o -name 'metrics.jsonl' -o -name '*.png' \) -not -path '*/ckpt/*'))
