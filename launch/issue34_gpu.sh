#!/usr/bin/env bash
# Issue 34 on one lent GPU, outputs under $OUT. A checkout of scxue/AO-GPT-MDM in .aogpt/ (an
# ignored folder, carried: `git --git-dir=<mirror> archive HEAD | tar -x -C .aogpt`); text8like
# in .data/ for the length runs. The GPU image has torch. RUNLOCAL=1: CPU-sized, to check.
#   bash launch/issue34_gpu.sh speed     # (1) the logit match on the GPU (tests/test_aogpt_torch.py),
#                                        # then (6) 124M training throughput, the GPU to itself, one
#                                        # process after another: AO-GPT's compiled PyTorch step,
#                                        # aoarm's aogpt and decoupled_rope (batch 32, L = 1024),
#                                        # a profile of aogpt's step (profile.txt), aogpt with
#                                        # XLA's norms, aogpt with AO-GPT's parts (within BUDGET s)
#   bash launch/issue34_gpu.sh lengths REGEX [SECONDS]
#                                        # (5) configs/aogpt_length.py's entries matching REGEX,
#                                        # at once (launch/evidence_gpu.sh with CONFIG=)
set -uo pipefail
OUT=${OUT:-/tmp/issue34_out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks/ import aoarm
export AOGPT_MDM_DIR=${AOGPT_MDM_DIR:-$PWD/.aogpt}
parts=own_positions=learned,bias=True,tie_embeddings=False,gelu=exact,norm_eps=1e-5,init_trunc=3
tp=(python3 benchmarks/train_throughput.py --preset=gpt2 --batch=32 --steps=30 --window=15
    --sync_steps=3 --json="$OUT/throughput.jsonl")
peer=(--batch=32 --steps=30 --window=15)
prof=(python3 benchmarks/profile_step.py --preset=gpt2 --batch=32 --steps=5 --top=30)
if [ "${RUNLOCAL:-0}" = 1 ]; then  # CPU-sized, to check the script
  tp=(python3 benchmarks/train_throughput.py --preset=runlocal --batch=2 --steps=2 --window=1
      --sync_steps=1 --json="$OUT/throughput.jsonl")
  peer=(--batch=2 --steps=2 --window=1 --layers=2 --d_model=64 --heads=4 --seq_len=64 --vocab=27
        --no_compile)
  prof=(python3 benchmarks/profile_step.py --preset=runlocal --batch=2 --steps=2 --top=8)
fi
case ${1:?speed or lengths} in
  speed)
    [ "${MATCH:-1}" = 1 ] &&  # MATCH=0: skip (done on this image: results/h100/issue34/match.txt)
      python3 -m pytest -q -s -p no:warnings tests/test_aogpt_torch.py 2>&1 | tee "$OUT/match.txt" | tail -8
    export XLA_PYTHON_CLIENT_PREALLOCATE=true  # the GPU to itself, for each process in turn
    # in the order of what each tells; a step runs only with its whole limit left of BUDGET s
    source launch/budget_step.sh
    step "${PEER_SECONDS:-150}" python3 benchmarks/aogpt_torch_throughput.py "${peer[@]}" \
      --json="$OUT/throughput.jsonl" 2>&1 | grep -E '^\{|rror|skipped'
    step "${TP_SECONDS:-150}" "${tp[@]}" --variants=aogpt,decoupled_rope 2>&1 | grep -E '^\||rror|skipped'
    # where aogpt's step spends its time: the device events by name, per step
    step "${PROF_SECONDS:-120}" "${prof[@]}" --variants=aogpt --json="$OUT/profile.json" 2>&1 \
      | tee "$OUT/profile.txt" | grep -E '^###|rror|skipped'
    # the norms by XLA, which can fuse each with the adaptive norm's shift and scale after it
    step "${TP_SECONDS:-150}" "${tp[@]}" --variants=aogpt --model=kernels.norm=xla 2>&1 \
      | grep -E '^\||rror|skipped'
    step "${TP_SECONDS:-150}" "${tp[@]}" --variants=aogpt --model="$parts" 2>&1 | grep -E '^\||rror|skipped'
    ;;
  lengths)
    CONFIG=configs/aogpt_length.py TAG=${TAG:-aogpt_length} OUT=$OUT \
      bash launch/evidence_gpu.sh "${2:?REGEX}" "${3:-560}"
    ;;
  *) echo "issue34_gpu.sh: unknown call $1 (speed | lengths)" >&2; exit 2 ;;
esac
