"""The token store's speed: preparation (MB/s, tokens/s, peak memory) of a generated corpus, and
the loader (batches/s, tokens/s) at the GPT-2 training shape, on this machine's cores.

  PYTHONPATH=. python benchmarks/data_prep.py --mb=1024 --tokenizer=bpe --workers=0
  PYTHONPATH=. python benchmarks/data_prep.py --corpus=DIR ...   # your own text files

The generated corpus repeats the pydoc topics shipped with CPython, shuffled by paragraph, in
files of 64 MB (a real corpus's speed depends on its text; say which was used). The tokenizer
learns from the first 20 MB. Peak memory is the largest resident set of this process and of its
worker processes. The loader draws `--steps` training batches of 64 x 1024 at random steps from
one process, as the training loop does on one host.
"""

import argparse
import json
import os
import random
import resource
import tempfile
import time

import numpy as np


def generate(root: str, mb: int) -> list[str]:
  from pydoc_data import topics

  paras = [p for t in topics.topics.values() for p in t.split("\n\n") if p.strip()]
  rng = random.Random(0)
  paths, per_file = [], 64 << 20
  left = mb << 20
  while left > 0:
    path = os.path.join(root, f"part{len(paths):04d}.txt")
    size = 0
    with open(path, "w", encoding="utf-8") as f:
      while size < min(per_file, left):
        p = rng.choice(paras) + "\n\n"
        f.write(p)
        size += len(p.encode("utf-8"))
    left -= size
    paths.append(path)
  return paths


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--mb", type=int, default=1024, help="generated corpus size")
  p.add_argument("--corpus", default="", help="use these files instead (path, glob or folder)")
  p.add_argument("--tokenizer", default="bpe", choices=["bpe", "sentencepiece"])
  p.add_argument("--vocab_size", type=int, default=4096)
  p.add_argument("--workers", type=int, default=0, help="0: one per core")
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--json", default="")
  a = p.parse_args()

  from aoarm.data import pipeline, sources, store, streamed, subword

  root = tempfile.mkdtemp(prefix="aoarm-data-prep-")
  os.makedirs(root + "/c")
  paths = sources.expand_paths(a.corpus, "--corpus") if a.corpus else generate(root + "/c", a.mb)
  t = time.perf_counter()
  texts = streamed._texts(paths, {"doc_per_line": False, "text_key": "text", "text8": False})
  if a.tokenizer == "bpe":
    tok = subword.BpeTokenizer.train(texts, a.vocab_size, 20 << 20)
  else:
    tok = subword.SentencePieceTokenizer.train(texts, a.vocab_size, "unigram", 20 << 20)
  train_s = time.perf_counter() - t
  opts = {"doc_per_line": False, "text_key": "text", "text8": False}
  t = time.perf_counter()
  st = store.build_store(root + "/store", paths, tok, opts, "train", 1 << 26, a.workers)
  build_s = time.perf_counter() - t
  rss = max(
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
  )
  batches = pipeline.TrainBatches(st, 1024, 64, seed=0)
  rng = np.random.default_rng(0)
  t = time.perf_counter()
  for s in rng.integers(0, 10**6, a.steps):
    batches.batch(int(s))
  load_s = time.perf_counter() - t
  mb = st.manifest["num_bytes"] / 2**20
  row = {
    "tokenizer": a.tokenizer,
    "vocab_size": tok.vocab_size,
    "cores": os.cpu_count(),
    "workers": a.workers or os.cpu_count(),
    "corpus_mb": round(mb, 1),
    "tokens": st.num_tokens,
    "tokenizer_train_s": round(train_s, 1),
    "build_s": round(build_s, 1),
    "build_mb_s": round(mb / build_s, 1),
    "build_tokens_s": round(st.num_tokens / build_s),
    "peak_rss_mb": rss // 1024,
    "loader_batches_s": round(a.steps / load_s, 1),
    "loader_tokens_s": round(a.steps * 64 * 1024 / load_s),
  }
  print(json.dumps(row))
  import shutil

  shutil.rmtree(root, ignore_errors=True)
  if a.json:
    with open(a.json, "a") as f:
      f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
