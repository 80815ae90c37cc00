#!/usr/bin/env bash
# Issue 33's experiment (configs/subword.py) on one lent GPU whose disk does not outlive the call:
# the corpus from the raw sources in $RAW (launch/subword_corpus.py), the BPE store built once
# (aoarm.tools.prepare_data), then every sweep entry matching REGEX at once, one process each
# (their log in $OUT/logs), each followed by its evals at its best validation checkpoint on the
# valid and the test split; within SECONDS everything small is packed into $OUT/$TAG.tgz
# (configs, eval JSONs and per-window files, metrics with the validation curve; no checkpoints).
#   RAW=.raw TAG=sw1024 bash launch/subword_gpu_sweep.sh '_seq_len1024_seed[0-2]' 560
# Training stops early past its validation minimum (train.patience) or, at the latest, RESERVE
# seconds (default 100) before SECONDS, with a checkpoint, so that the evals still run.
# ARG: the config arg for every run (ARG=steps=8000: a longer schedule for every arm; give it its
# own SWEEP_DIR). MEM: each process's share of the GPU's memory (default: none, each takes what
# it needs; a cap of 0.14 ended two_stream's runs at L = 1024 before step 50 on an H100 while
# decoupled_rope's ran).
# The logs come back packed ($OUT/$TAG-logs.tgz), a run without an eval's last lines in stdout,
# and the GPU's memory per process every 20 s ($OUT/gpu_mem.csv). RUNLOCAL=1: CPU-sized.
set -uo pipefail
regex=$1; seconds=${2:-560}; tag=${TAG:-subword}
OUT=${OUT:-/tmp/subword_out}; RAW=${RAW:-.raw}; mkdir -p "$OUT/logs"
corpus=${CORPUS:-/tmp/subword_corpus}; dir=${SWEEP_DIR:-/tmp/subword_runs}; store=/tmp/subword_store
export XLA_PYTHON_CLIENT_PREALLOCATE=false
[ -n "${MEM:-}" ] && export XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM
export PYTHONUNBUFFERED=1
arg=${ARG:-}; [ "${RUNLOCAL:-0}" = 1 ] && arg=${arg:+$arg,}runlocal
cfg=configs/subword.py${arg:+:$arg}
[ -f "$corpus/corpus.json" ] || python3 launch/subword_corpus.py --raw="$RAW" --out="$corpus" \
  | tee "$OUT/corpus.log" | tail -2
common=(--config.data.train_path="$corpus/train" --config.data.valid_path="$corpus/valid"
        --config.data.test_path="$corpus/test" --config.data.cache_dir="$store")
python3 -m aoarm.tools.prepare_data --config="$cfg" "${common[@]}" 2>&1 | tail -12 \
  | tee "$OUT/prepare.log"
source launch/sweep_runs.sh  # sweep_names, stamp
names=$(sweep_names "$cfg" "$dir" "$regex")
start=$SECONDS
nvidia-smi --query-compute-apps=pid,used_memory --format=csv -l 20 > "$OUT/gpu_mem.csv" 2>/dev/null &
smi=$!; runs=()
for n in $names; do
  ( timeout "$((seconds - ${RESERVE:-100}))" python3 launch/sweep.py --config="$cfg" \
      --sweep_dir="$dir" --only="^$n\$" -- "${common[@]}" 2>&1
    for split in valid test; do  # at the best validation checkpoint (configs/subword.py)
      left=$((seconds - (SECONDS - start) - 5)); [ "$left" -gt 10 ] || break
      timeout "$left" python3 -m aoarm.main --workdir="$dir/$n" --mode=eval \
        --config.eval.checkpoint=best --config.eval.split=$split "${common[@]}" 2>&1 | tail -3
    done ) | tr '\r' '\n' | grep -v 'step/s\]$' | stamp > "$OUT/logs/$n.log" &
  runs+=($!)
done
wait "${runs[@]}"
kill "$smi" 2>/dev/null
echo "[subword] $(echo $names | wc -w) runs in $((SECONDS - start)) s"
for n in $names; do
  printf '[subword] %-58s %s\n' "$n" "$(ls "$dir/$n/eval" 2>/dev/null | tr '\n' ' ')"
  [ -d "$dir/$n/eval" ] || grep -v '^\S* *$' "$OUT/logs/$n.log" | tail -4 | sed "s/^/[no eval] $n: /"
done
tar czf "$OUT/$tag-logs.tgz" -C "$OUT" logs && rm -r "$OUT/logs"
(cd "$dir" && tar czf "$OUT/$tag.tgz" $(find . \( -name 'config.json' -o -name 'metrics.jsonl' \
  -o -path '*/eval/*' -o -name 'timing.json' -o -name '*-best.json' \) -not -path '*/ckpt/*'))
cp "$corpus/corpus.json" "$OUT/" 2>/dev/null
