#!/usr/bin/env bash
# Issue 16's experiment (configs/frontier.py) on a two-GPU machine whose disk does not outlive a
# call, in two calls; text8like in .data/ (train/valid/test.txt), outputs under $OUT.
#   part 1: trains the six seed-0 cells and samples their frontiers (no judge needed):
#           GPU 0: the three L=128 cells, then mdm L=1024; GPU 1: two_stream and decoupled_rope
#           L=1024. Writes $OUT/{L128,L1024a,L1024b}.samples.npz and $OUT/runs_part1.tgz.
#   part 2: GPU 0 trains the judge (ar, 8x512, L=1024, 2x the tokens) and scores every samples
#           file found in $SAMPLES (the part-1 files, carried up); GPU 1 trains the seed-1
#           L=1024 cells. Writes $OUT/frontier.json, $OUT/frontier_L*.png, $OUT/runs_part2.tgz.
# RUNLOCAL=1 runs the same at CPU size (configs/frontier.py:runlocal), to check the script.
set -uo pipefail
part=$1
OUT=${OUT:-/tmp/frontier_out}; SAMPLES=${SAMPLES:-.frontier}; mkdir -p "$OUT"
cfg=configs/frontier.py; temps=0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.5; n=64; budget=${BUDGET:-560}
if [ "${RUNLOCAL:-0}" = 1 ]; then cfg=configs/frontier.py:runlocal; temps=0.8,1.2; n=4; fi
data=(--config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt
      --config.data.test_path=.data/test.txt)
runs=/tmp/frontier_runs
end=$((SECONDS + budget))
left() { echo $((end - SECONDS)); }

cells() {  # GPU REGEX: train then eval every matching cell, within what is left of the budget
  CUDA_VISIBLE_DEVICES=$1 timeout "$(left)" python3 launch/sweep.py --config="$cfg" \
    --sweep_dir="$runs" --only="$2" -- "${data[@]}" 2>&1 | grep -E '^\[|rror' | cut -c1-200
}
samples() {  # GPU NAME RUN...: frontier samples of the runs (no judge) to $OUT/NAME.samples.npz
  local gpu=$1 name=$2; shift 2
  local dirs; dirs=$(printf "$runs/%s," "$@"); dirs=${dirs%,}
  local args=(--runs="$dirs" --ks=1,8 --adaptive --mdm_steps=0,256,128,64 --temperatures=$temps
              --num_samples=$n)
  CUDA_VISIBLE_DEVICES=$gpu timeout "$(left)" python3 -m aoarm.gen_eval "${args[@]}" \
    --out="$OUT/$name" 2>&1 | grep -E '^sampled|^wrote|rror' | cut -c1-300
  if [ ! -f "$OUT/$name.samples.npz" ]; then  # float64 draws failed: say so, draw in float32
    echo "[fallback] $name: float32 draws"
    CUDA_VISIBLE_DEVICES=$gpu timeout "$(left)" python3 -m aoarm.gen_eval "${args[@]}" \
      --precision=float32 --out="$OUT/${name}_f32" 2>&1 | grep -E '^wrote|rror' | cut -c1-300
  fi
}
pack() {  # every run's small outputs (config, eval JSON, metrics; no checkpoints)
  (cd "$runs" && tar czf "$OUT/runs_$1.tgz" \
    $(find . \( -name '*.json' -o -name 'metrics.jsonl' \) -not -path '*/ckpt/*'))
}

if [ "$part" = 1 ]; then
  ( cells 0 '_seq_len128_seed0$'
    samples 0 L128 two_stream_seq_len128_seed0 decoupled_rope_seq_len128_seed0 mdm_seq_len128_seed0
    cells 0 '^mdm_seq_len1024_seed0$'
    samples 0 L1024a mdm_seq_len1024_seed0 ) > "$OUT/gpu0.log" 2>&1 &
  ( cells 1 '^(two_stream|decoupled_rope)_seq_len1024_seed0$'
    samples 1 L1024b two_stream_seq_len1024_seed0 decoupled_rope_seq_len1024_seed0 \
  ) > "$OUT/gpu1.log" 2>&1 &
  wait
  pack part1
elif [ "$part" = 2 ]; then
  files=$(ls "$SAMPLES"/*.samples.npz | paste -sd,)
  ( cells 0 '^ar_'
    CUDA_VISIBLE_DEVICES=0 timeout "$(left)" python3 -m aoarm.gen_eval \
      --judge="$runs/ar_seq_len1024_seed0" --samples="$files" --word_level \
      --out="$OUT/frontier" 2>&1 | grep -E '^wrote|rror' ) > "$OUT/gpu0.log" 2>&1 &
  ( cells 1 '_seq_len1024_seed1$' ) > "$OUT/gpu1.log" 2>&1 &
  wait
  pack part2
fi
cat "$OUT"/gpu*.log
