#!/usr/bin/env bash
# Issue 15's end-to-end subword run on a two-GPU machine (one run per GPU, in parallel; GPUS=1:
# both runs share one GPU, each allocating only what it uses): the
# public-domain sources of shared/data/raw (copied to $RAW), text kept as it is; the last 5% of
# every source's lines (documents for .jsonl) held out as the valid split; a byte-level BPE of
# 16384 entries trained on the training split; the 124M shape (12 x 768) at L = 1024 for
# two_stream and decoupled_rope, the same steps and tokens each. Outputs under $OUT.
#   OUT=... RAW=.raw STEPS=1500 bash launch/subword_gpu.sh
# SEED=n: both runs with seed n (model init, orders, batches; the tokenizer and store are the same).
# RUNLOCAL=1: the same at CPU size, to check the script.
set -uo pipefail
OUT=${OUT:-/tmp/subword_out}; RAW=${RAW:-.raw}; STEPS=${STEPS:-1500}; GPUS=${GPUS:-2}; SEED=${SEED:-0}
mkdir -p "$OUT"
if [ "$GPUS" = 1 ]; then export XLA_PYTHON_CLIENT_PREALLOCATE=false; fi
corpus=/tmp/corpus; runs=/tmp/subword_runs
python3 - "$RAW" "$corpus" <<'PY'
import json, os, sys
raw, out = sys.argv[1:]
keep = ("brown/brown.txt", "moby_dick/moby_dick.txt", "sotu/sotu_1790_2021.txt",
        "tinyshakespeare/input.txt", "wikitext-2/wiki.test.raw", "lambada/lambada_test.jsonl")
for split in ("train", "valid"):
  os.makedirs(os.path.join(out, split), exist_ok=True)
for rel in keep:
  with open(os.path.join(raw, rel), encoding="utf-8") as f:
    lines = f.readlines()
  cut = int(len(lines) * 0.95)
  name = rel.replace("/", "_")
  for split, part in (("train", lines[:cut]), ("valid", lines[cut:])):
    with open(os.path.join(out, split, name), "w", encoding="utf-8") as f:
      f.writelines(part)
  print(f"{rel}: {len(lines)} lines, {len(lines) - cut} held out")
PY
shape=(--config.model.num_layers=12 --config.model.d_model=768 --config.model.num_heads=12
       --config.model.kernels.mlp=xla --config.model.kernels.qkv=xla)
train=(--config.seed=$SEED --config.train.batch_size=32 --config.train.num_steps=$STEPS --config.train.log_every=100
       --config.opt.lr=6e-4 --config.opt.warmup_steps=200 --config.ckpt.every_steps=100000)
if [ "${RUNLOCAL:-0}" = 1 ]; then
  shape=(--config.model.num_layers=2 --config.model.d_model=64 --config.model.num_heads=4
         --config.model.dtype=float32)
  train=(--config.seed=$SEED --config.train.batch_size=2 --config.train.num_steps=$STEPS
         --config.train.log_every=5)
fi
data=(--config.data.source=text_files --config.data.train_path=$corpus/train
      --config.data.valid_path=$corpus/valid --config.data.test_path=$corpus/valid
      --config.data.extensions=.txt,.raw,.jsonl
      --config.data.tokenizer=bpe --config.data.vocab_size=16384 --config.data.seq_len=1024
      --config.data.cache_dir=/tmp/store --config.eval.split=valid)
# one store for both runs: built once, before they start
python3 -m aoarm.tools.prepare_data --config=configs/two_stream.py "${data[@]}" 2>&1 | tail -12 \
  | tee "$OUT/prepare.log"
i=0
for v in two_stream decoupled_rope; do
  ( for mode in train eval; do
      CUDA_VISIBLE_DEVICES=$((i % GPUS)) python3 -m aoarm.main --config=configs/$v.py \
        --workdir=$runs/$v --mode=$mode "${data[@]}" "${shape[@]}" "${train[@]}" 2>&1 \
        | grep -vE 'Given directory|^W[0-9]|^I[0-9]' | tail -25
    done ) > "$OUT/$v.log" 2>&1 &
  i=$((i + 1))
done
wait
(cd "$runs" && tar czf "$OUT/subword_runs.tgz" \
  $(find . \( -name 'config.json' -o -name 'metrics.jsonl' -o -path '*/eval/*.json' \)))
tail -n 8 "$OUT"/*.log
