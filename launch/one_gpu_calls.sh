#!/usr/bin/env bash
# What is owed to issues 15-17 on ONE lent H200, in three calls of under 10 minutes each, with
# text8like in .data/ and the public-domain sources in .raw/ (carried), outputs under $OUT:
#   bash launch/one_gpu_calls.sh 1   # issue 16: the judge, trained and then scoring the committed
#                                    # samples; issue 17: query_layers=2 and AO-GPT's recipe at
#                                    # two_stream's FLOPs, both at L = 1024 (and mdm cells that
#                                    # the unrolled 8-rate eval's compile made miss the time box)
#   bash launch/one_gpu_calls.sh 2   # issue 16: mdm's whole-split NLL with 8 masking rates (seed 0
#                                    # at L = 128 and 1024, seed 1 at 1024), seed 1 of two_stream
#                                    # and decoupled_rope at L = 1024; issue 17: query_layers=2 at
#                                    # L = 1024 again (its eval was cut in call 1), AO-GPT's recipe
#                                    # at L = 128 at the sweep's tokens and at two_stream's FLOPs
#   bash launch/one_gpu_calls.sh 3   # issue 15's subword run (both runs on the GPU); then issue
#                                    # 17's 124M training throughput, side by side, the GPU to itself
# Small runs share the GPU: each process allocates what it uses (no preallocation), at most
# MEM of it. Each sweep entry runs in its own block (launch/device_block.sh) so all run at once.
# RUNLOCAL=1: calls 1 and 2 at CPU size, to check the script.
set -uo pipefail
OUT=${OUT:-/tmp/one_gpu_out}; mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false MEM=${MEM:-0.3}
data=(--config.data.train_path=.data/train.txt --config.data.valid_path=.data/valid.txt
      --config.data.test_path=.data/test.txt)
block() {  # TAG REGEX SECONDS: one length-sweep block in the background, its log in blocks.log
  (SWEEP_DIR=/tmp/s_$1 TAG=$1 XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM \
    bash launch/device_block.sh "configs/length_sweep.py${RUNLOCAL:+:runlocal}" "$2" "$3" "${data[@]}" \
    2>&1 | sed "s/^/[$1] /" >> "$OUT/blocks.log") &
}
frontier() {  # BUDGET CELLS...: launch/frontier_gpu.sh (every process's log in $OUT/logs.tgz)
  local budget=$1; shift
  BUDGET=$budget bash launch/frontier_gpu.sh "$@" 2>&1
}
recipe=own_positionslearned_trainmixture_l2r_prob0.1
case ${1:?call 1, 2 or 3} in
  1)
    block ql2 'two_stream_seq_len1024_seed0_query_layers2$' 400
    block eq1024 "aogpt_seq_len1024_seed0_compute_oftwo_stream_$recipe\$" 460
    SAMPLES_IN=results/h200x2/frontier frontier 540 0:mdm:128:0:nll+0:mdm:1024:0:nll \
      0:mdm:1024:1:nll
    ;;
  2)
    export DIAG_SECONDS=50
    block ql2 'two_stream_seq_len1024_seed0_query_layers2$' 440
    block rec128 "aogpt_seq_len128_seed0_$recipe\$" 440
    block eq128 "aogpt_seq_len128_seed0_compute_oftwo_stream_$recipe\$" 480
    JUDGE=0 frontier 540 0:mdm:128:0:nll 0:mdm:1024:0:nll 0:mdm:1024:1:nll \
      0:two_stream:1024:1:nll 0:decoupled_rope:1024:1:nll
    ;;
  3)
    GPUS=1 STEPS=${STEPS:-800} bash launch/subword_gpu.sh
    tp=(python3 benchmarks/train_throughput.py --preset=gpt2 --batch=32 --steps=30 --window=15
        --sync_steps=3)
    xla=kernels.norm=xla,kernels.mlp=xla,kernels.qkv=xla
    export XLA_PYTHON_CLIENT_PREALLOCATE=true  # the GPU to itself
    rows() { grep --line-buffered -E '^\{|^\||rror' | tee -a "$OUT/throughput.jsonl"; }
    timeout 170 "${tp[@]}" --variants=aogpt,two_stream,decoupled_rope --model=$xla 2>&1 | rows
    for n in 1 6; do
      timeout 70 "${tp[@]}" --variants=two_stream --model=$xla,query_layers=$n 2>&1 | rows
    done
    ;;
esac
wait
