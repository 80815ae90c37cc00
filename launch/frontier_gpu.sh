#!/usr/bin/env bash
# Issue 16's experiment (configs/frontier.py) in one call on a two-GPU machine whose disk does not
# outlive it; text8like in .data/ (train/valid/test.txt), outputs under $OUT. The small models
# leave an H200 mostly idle, so each GPU runs three streams at once:
#   GPU 0: the judge (ar, 8x512, L=1024, 2x the tokens) | two_stream L=128 | decoupled_rope and
#          mdm L=128;   GPU 1: two_stream | decoupled_rope | mdm at L=1024.
# Each cell stream trains its run (the in-training final eval only), then samples its frontier
# (float64 draws for the fixed orders; the adaptive order in float32, see RESULTS.md). The judge
# stream then scores every samples file: $OUT/frontier.json and $OUT/frontier_L*.png.
# Every process's whole log is in $OUT/logs.tgz, every run's small outputs in $OUT/runs.tgz,
# the samples files in $OUT/samples.tgz.
# RUNLOCAL=1 runs the same at CPU size (configs/frontier.py:runlocal), to check the script.
set -uo pipefail
OUT=${OUT:-/tmp/frontier_out}; mkdir -p "$OUT"
arg=""; temps=0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.4; n=64; budget=${BUDGET:-560}
if [ "${RUNLOCAL:-0}" = 1 ]; then arg="runlocal,"; temps=0.8,1.2; n=4; fi
runs=/tmp/frontier_runs; logs=/tmp/frontier_logs; smp=/tmp/frontier_samples
mkdir -p "$runs" "$logs" "$smp"
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3  # three processes share a GPU
end=$((SECONDS + budget))
left() { echo $((end - SECONDS)); }

train() {  # GPU VARIANT L SEED
  local name=$2_seq_len$3_seed$4
  CUDA_VISIBLE_DEVICES=$1 timeout "$(left)" python3 -m aoarm.main \
    --config="configs/frontier.py:${arg}data_dir=.data,variant=$2,seq_len=$3,seed=$4" \
    --workdir="$runs/$name" > "$logs/train_$name.log" 2>&1
  echo "[$(date +%T)] trained $name: exit $?"
}
samples() {  # GPU NAME PRECISION EXTRA RUN...: samples (no judge) to $smp/NAME.samples.npz
  local gpu=$1 name=$2 prec=$3 extra=$4; shift 4
  local dirs; dirs=$(printf "$runs/%s," "$@"); dirs=${dirs%,}
  CUDA_VISIBLE_DEVICES=$gpu timeout "$(left)" python3 -m aoarm.gen_eval --runs="$dirs" \
    --ks=1,8 --mdm_steps=0,256,128,64 --temperatures=$temps --num_samples=$n \
    --precision="$prec" $extra --out="$smp/$name" > "$logs/sample_$name.log" 2>&1
  echo "[$(date +%T)] sampled $name: exit $?"
}
cell() {  # GPU VARIANT L: train, then the frontier samples
  train "$1" "$2" "$3" 0
  samples "$1" "$2_L$3" float64 "" "$2_seq_len$3_seed0"
  if [ "$2" = two_stream ]; then
    samples "$1" "$2_L$3_adaptive" float32 --order=adaptive "$2_seq_len$3_seed0"
  fi
}

# streams: "GPU:VARIANT:L" cells joined by "+" run in turn; the default is the whole experiment.
# Samples files already made (e.g. carried from an earlier call) go in $SAMPLES_IN.
streams=("$@")
[ ${#streams[@]} = 0 ] && streams=(0:two_stream:128 0:decoupled_rope:128+0:mdm:128
  1:two_stream:1024 1:decoupled_rope:1024 1:mdm:1024)
for s in "${streams[@]}"; do
  ( IFS=+; for c in $s; do IFS=: read -r g v l <<< "$c"; cell "$g" "$v" "$l"; done ) &
done
train 0 ar 1024 0
wait
cp "${SAMPLES_IN:-/nonexistent}"/*.samples.npz "$smp"/ 2>/dev/null
files=$(ls "$smp"/*.samples.npz | paste -sd,)
CUDA_VISIBLE_DEVICES=0 timeout "$(left)" python3 -m aoarm.gen_eval \
  --judge="$runs/ar_seq_len1024_seed0" --samples="$files" --word_level --out="$OUT/frontier" \
  > "$logs/score.log" 2>&1
echo "[$(date +%T)] scored: exit $?"
(cd "$runs" && tar czf "$OUT/runs.tgz" \
  $(find . \( -name '*.json' -o -name 'metrics.jsonl' \) -not -path '*/ckpt/*' -not -path '*/cache/*'))
(cd /tmp && tar czf "$OUT/logs.tgz" frontier_logs)
(cd /tmp && tar czf "$OUT/samples.tgz" frontier_samples)
tail -n 3 "$logs"/score.log
