#!/usr/bin/env bash
# Issue 32's start-up measurements (RESULTS.md, "A sweep cell at the GPU's speed") on one lent
# GPU, outputs under $OUT (~7 minutes). text8like in .data/.
#   bash launch/issue32_gpu.sh          # RUNLOCAL=1: CPU-sized, to check the script
# Steps in the order of what is still owed (a short call takes the first ones):
# 1. The cold `init`, side by side: one seed of the cell with the compilation cache off,
#    `train.init_on=device`, then `host` (both with train.threefry_kernel=false, the default
#    before 2026-12-08), then `device` with threefry as one GPU kernel (the default now)
#    (2026-12-07, H100, device twice: 16.4 s both times).
# 2. The initial state drawn on the GPU, on the host and on the GPU with the threefry kernel,
#    time and how far apart the states are (benchmarks/init_time.py; 2026-12-07, H100, the
#    sweep's model: 11.7 vs 2.8 s; the GPT-2 row ran past its 60 s limit, now 150 s).
# 3. The GPT-2-shape start-up goals (<= 40 s cold, <= 12 s warm to the first step, XLA path),
#    now with each launch's phases (2026-12-07, H100: 72.7 / 12.9 s).
# 4. Where the sweep model's step goes: a profile of two_stream's step at the cell's shape on the
#    sweep's XLA path (2026-12-07, H100: the GPU busy 98.7% of the step).
set -uo pipefail
OUT=${OUT:-/tmp/issue32_out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks/ import aoarm
cfg=configs/evidence.py; cell='^two_stream_seq_len1024_seed[0-9]+$'; L=1024; batch=64
data=(--config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt
      --config.data.test_path=.data/test.txt)
preset=small; ct=()
if [ "${RUNLOCAL:-0}" = 1 ]; then
  cfg=$cfg:runlocal; data=(); preset=runlocal; L=64; batch=4; ct=(--runlocal)
fi
xla=--model=kernels.mlp=xla,kernels.qkv=xla
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"
git log --oneline -1 | tee "$OUT/commit.txt"
source launch/budget_step.sh  # step LIMIT CMD...: whole limits within BUDGET s
for launch in device host kernel; do  # kernel: the default since (train.threefry_kernel)
  init_on=${launch/kernel/device}; kernel=false; [ "$launch" = kernel ] && kernel=true
  step "${CELL_SECONDS:-140}" python3 benchmarks/sweep_cell.py --config="$cfg" --cell="$cell" \
    --seeds=1 --dir="/tmp/issue32_cache_off_$launch" --paths=xla -- "${data[@]}" \
    --config.train.compile_cache=off --config.train.init_on=$init_on \
    --config.train.threefry_kernel=$kernel \
    2> >(tee -a "$OUT/cache_off.err" | grep skipped >&2) | sed "s/^{/{\"launch\": \"$launch\", /" \
    | tee -a "$OUT/cache_off.jsonl"
done
for p in $preset ${GPT2_PRESET:-gpt2}; do
  limit=60; [ "$p" = gpt2 ] && limit=150
  [ "${RUNLOCAL:-0}" = 1 ] && p=runlocal
  step $limit python3 benchmarks/init_time.py --preset="$p" --variants=two_stream $xla \
    2> >(tee -a "$OUT/init_time.err" | grep -E 'skipped|rror' >&2) | tee -a "$OUT/init_time.jsonl"
done
step "${CT_SECONDS:-150}" python3 benchmarks/compile_time.py --paths=xla "${ct[@]}" \
  --timeout=140 --out="$OUT/compile_time.jsonl" 2>&1 | tail -6 | tee "$OUT/compile_time.txt"
step "${PROF_SECONDS:-120}" python3 benchmarks/profile_step.py --preset=$preset --batch=$batch \
  --seq_len=$L --variants=two_stream $xla --steps=5 --top=25 --json="$OUT/profile.json" 2>&1 \
  | tee "$OUT/profile.txt" | grep -E '^###|rror|skipped'
