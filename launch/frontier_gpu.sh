#!/usr/bin/env bash
# Issue 16's experiment (configs/frontier.py) in one call on a GPU machine whose disk does not
# outlive it; text8like in .data/ (train/valid/test.txt), outputs under $OUT. The small models
# leave an H200 mostly idle, so several streams share each GPU (XLA_PYTHON_CLIENT_MEM_FRACTION,
# MEM to set it). Without arguments, on two GPUs:
#   GPU 0: the judge (ar, 8x512, L=1024, 2x the tokens) | two_stream L=128 | decoupled_rope and
#          mdm L=128;   GPU 1: two_stream | decoupled_rope | mdm at L=1024.
# Each frontier cell trains its run (the in-training final eval only), then samples its frontier
# (float64 draws for the fixed orders; the adaptive order in float32, see RESULTS.md). An `nll`
# cell trains its run, then evaluates it on the whole valid split (`--mode=eval`; mdm with
# configs/frontier.py's 8 masking rates) and samples nothing. The judge's stream scores every
# samples file (those of $SAMPLES_IN too) as soon as it and the frontier cells are done:
# $OUT/frontier.json and $OUT/frontier_L*.png. JUDGE=0: no judge, no scoring.
# Every process's whole log is in $OUT/logs.tgz, every run's small outputs in $OUT/runs.tgz,
# the samples files it made in $OUT/samples.tgz.
#   bash launch/frontier_gpu.sh [GPU:VARIANT:L[:SEED[:frontier|nll]][+...] ...]
# e.g. on one GPU: MEM=0.22 SAMPLES_IN=results/h200x2/frontier bash launch/frontier_gpu.sh \
#   0:mdm:128:0:nll 0:mdm:1024:0:nll+0:two_stream:1024:1:nll
# RUNLOCAL=1 runs the same at CPU size (configs/frontier.py:runlocal), to check the script.
set -uo pipefail
OUT=${OUT:-/tmp/frontier_out}; mkdir -p "$OUT"
arg=""; temps=0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.4; n=64; budget=${BUDGET:-560}
if [ "${RUNLOCAL:-0}" = 1 ]; then arg="runlocal,"; temps=0.8,1.2; n=4; fi
runs=/tmp/frontier_runs; logs=/tmp/frontier_logs; smp=/tmp/frontier_samples
mkdir -p "$runs" "$logs" "$smp"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM:-0.3}  # three processes share a GPU by default
end=$((SECONDS + budget))
left() { local n=$((end - SECONDS)); echo $((n > 1 ? n : 1)); }  # seconds left, at least 1

train() {  # GPU VARIANT L SEED
  local name=$2_seq_len$3_seed$4
  CUDA_VISIBLE_DEVICES=$1 timeout "$(left)" python3 -m aoarm.main \
    --config="configs/frontier.py:${arg}data_dir=.data,variant=$2,seq_len=$3,seed=$4" \
    --workdir="$runs/$name" > "$logs/train_$name.log" 2>&1
  local rc=$?; echo "[$(date +%T)] trained $name: exit $rc"
}
samples() {  # GPU NAME PRECISION EXTRA RUN...: samples (no judge) to $smp/NAME.samples.npz
  local gpu=$1 name=$2 prec=$3 extra=$4; shift 4
  local dirs; dirs=$(printf "$runs/%s," "$@"); dirs=${dirs%,}
  CUDA_VISIBLE_DEVICES=$gpu timeout "$(left)" python3 -m aoarm.tools.gen_eval --runs="$dirs" \
    --ks=1,8 --mdm_steps=0,256,128,64 --temperatures=$temps --num_samples=$n \
    --precision="$prec" $extra --out="$smp/$name" > "$logs/sample_$name.log" 2>&1
  local rc=$?; echo "[$(date +%T)] sampled $name: exit $rc"
}
evaluate() {  # GPU VARIANT L SEED: the whole valid split
  local name=$2_seq_len$3_seed$4
  CUDA_VISIBLE_DEVICES=$1 timeout "$(left)" python3 -m aoarm.main \
    --config="configs/frontier.py:${arg}data_dir=.data,variant=$2,seq_len=$3,seed=$4" \
    --workdir="$runs/$name" --mode=eval > "$logs/eval_$name.log" 2>&1
  local rc=$?; echo "[$(date +%T)] evaluated $name: exit $rc"
}
cell() {  # GPU VARIANT L [SEED [frontier|nll]]: train, then the frontier samples or the eval
  local seed=${4:-0} what=${5:-frontier}
  train "$1" "$2" "$3" "$seed"
  if [ "$what" = nll ]; then evaluate "$1" "$2" "$3" "$seed"; return; fi
  local tag=$2_L$3; [ "$seed" = 0 ] || tag=${tag}_seed$seed
  samples "$1" "$tag" float64 "" "$2_seq_len$3_seed$seed"
  if [ "$2" = two_stream ]; then
    samples "$1" "${tag}_adaptive" float32 --order=adaptive "$2_seq_len$3_seed$seed"
  fi
}

# streams: cells joined by "+" run in turn; the default is the whole experiment on two GPUs.
streams=("$@")
[ ${#streams[@]} = 0 ] && streams=(0:two_stream:128 0:decoupled_rope:128+0:mdm:128
  1:two_stream:1024 1:decoupled_rope:1024 1:mdm:1024)
samples_some() {  # STREAM: does any of its cells sample?
  local c cs; IFS=+ read -ra cs <<< "$1"
  for c in "${cs[@]}"; do [[ $c == *:nll ]] || return 0; done
  return 1
}
samplers=()  # the streams whose samples the judge waits for
for s in "${streams[@]}"; do
  ( IFS=+; for c in $s; do
      IFS=: read -r g v l seed what <<< "$c"; cell "$g" "$v" "$l" "$seed" "$what"
    done ) &
  if samples_some "$s"; then samplers+=($!); fi
done
if [ "${JUDGE:-1}" = 1 ]; then
  train 0 ar 1024 0
  [ ${#samplers[@]} -gt 0 ] && wait "${samplers[@]}"
  files=$(ls "$smp"/*.samples.npz "${SAMPLES_IN:-/nonexistent}"/*.samples.npz 2>/dev/null \
    | paste -sd,)
  CUDA_VISIBLE_DEVICES=0 timeout "$(left)" python3 -m aoarm.tools.gen_eval \
    --judge="$runs/ar_seq_len1024_seed0" --samples="$files" --word_level --out="$OUT/frontier" \
    > "$logs/score.log" 2>&1
  rc=$?; echo "[$(date +%T)] scored: exit $rc"
  tail -n 3 "$logs"/score.log
fi
wait
(cd "$runs" && tar czf "$OUT/runs.tgz" \
  $(find . \( -name '*.json' -o -name 'metrics.jsonl' \) -not -path '*/ckpt/*' -not -path '*/cache/*'))
(cd /tmp && tar czf "$OUT/logs.tgz" frontier_logs)
if ls "$smp"/*.samples.npz > /dev/null 2>&1; then
  (cd /tmp && tar czf "$OUT/samples.tgz" frontier_samples)
fi
