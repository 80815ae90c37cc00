#!/usr/bin/env bash
# Issue 31's sweep (configs/evidence.py) on one lent GPU whose disk does not outlive the call:
# every entry matching REGEX runs at once as its own process (the small model leaves an H200
# mostly idle), each run trains and writes its whole-split eval and per-window file itself
# (train.final_eval), and within SECONDS everything small is packed into $OUT/$TAG.tgz
# (config, eval JSON and .npz, metrics, every process's log with a time stamp per line; no
# checkpoints). text8like in .data/ (carried). Unpack several calls' tarballs into one folder and
# run `python -m aoarm.tools.report` there.
#   TAG=L1024 bash launch/evidence_gpu.sh '_seq_len1024_seed[0-2](_compute_oftwo_stream)?$' 560
# SAMPLE_TEMPS=0.7,0.85,1.0: each run then also samples its final checkpoint (SAMPLE_N samples a
# temperature, SAMPLE_KS, SAMPLE_ADAPTIVE=1, SAMPLE_MDM_STEPS as gen_eval takes them) into
# RUN/frontier.samples.npz, packed with the rest: the frontier on the NLL table's checkpoints.
# DIAG_WINDOWS (default 64; 0: none): each run's attention diagnostics over that many windows
# after its eval (RUN/diagnostics/, packed; mdm has no generation order and gets none).
# CONFIG: another sweep file of the same get_config (e.g. configs/aogpt_length.py, issue 34).
# MEM: each process's share of the GPU's memory (default 0.09: ten processes).
# RUNLOCAL=1: the same at CPU size (configs/evidence.py:runlocal, pydoc data), to check it.
set -uo pipefail
regex=$1; seconds=${2:-560}; tag=${TAG:-evidence}
OUT=${OUT:-/tmp/evidence_out}; mkdir -p "$OUT"
dir=${SWEEP_DIR:-/tmp/evidence}; logs=$dir/logs; mkdir -p "$logs"
export XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM:-0.09}
export PYTHONUNBUFFERED=1
cfg=${CONFIG:-configs/evidence.py}; data=()
if [ "${RUNLOCAL:-0}" = 1 ]; then cfg=$cfg:runlocal; else
  data=(--config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt
        --config.data.test_path=.data/test.txt)
fi
source launch/sweep_runs.sh  # sweep_names, stamp
names=$(sweep_names "$cfg" "$dir" "$regex")
start=$SECONDS
for n in $names; do
  ( timeout "$seconds" python3 launch/sweep.py --config="$cfg" --sweep_dir="$dir" --only="^$n\$" \
      -- "${data[@]}" 2>&1
    left=$((seconds - (SECONDS - start) - 5))
    if [ "${DIAG_WINDOWS:-64}" -gt 0 ] && [ "$left" -gt 20 ] && [ -d "$dir/$n/ckpt" ] \
      && [[ $n != mdm* ]]; then
      # the attention diagnostics of the checkpoint the eval scored (RUN/diagnostics/, packed)
      timeout "$left" python3 -m aoarm.tools.diagnostics --workdir="$dir/$n" \
        --num_windows="${DIAG_WINDOWS:-64}" > /dev/null
    fi
    left=$((seconds - (SECONDS - start) - 5))
    if [ -n "${SAMPLE_TEMPS:-}" ] && [ "$left" -gt 20 ] && [ -d "$dir/$n/ckpt" ]; then
      # samples of the checkpoint the eval above scored (a frontier row's NLL and samples from
      # one model): scored later by a judge with `gen_eval --samples=...`
      timeout "$left" python3 -m aoarm.tools.gen_eval --runs="$dir/$n" \
        --temperatures="$SAMPLE_TEMPS" --num_samples="${SAMPLE_N:-64}" --ks="${SAMPLE_KS:-1}" \
        ${SAMPLE_ADAPTIVE:+--adaptive} --mdm_steps="${SAMPLE_MDM_STEPS:-0}" --out="$dir/$n/frontier"
    fi ) 2>&1 | tr '\r' '\n' | grep -v 'step/s\]$' | stamp > "$logs/$n.log" &
done
if command -v nvidia-smi > /dev/null; then  # the GPU's use while they run, every 5 s
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
    > "$logs/nvidia_smi_$tag.csv" 2>&1 &
  smi=$!
fi
wait $(jobs -p | grep -v "${smi:-x}") 2>/dev/null
[ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
echo "[evidence] $(echo $names | wc -w) runs in $((SECONDS - start)) s"
for n in $names; do
  printf '[evidence] %-60s %s\n' "$n" "$(ls "$dir/$n/eval" 2>/dev/null | tr '\n' ' ')"
done
(cd "$dir" && tar czf "$OUT/$tag.tgz" $(find . \( -name '*.json' -o -name '*.npz' \
  -o -name 'metrics.jsonl' -o -name '*.log' -o -name '*.csv' \) -not -path '*/ckpt/*'))
