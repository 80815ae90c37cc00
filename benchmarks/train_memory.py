"""Peak memory of a whole `aoarm.main` training command on a large generated corpus: the token
store's build (tokenizer training, worker processes) and then training steps read from it.

  PYTHONPATH=. python benchmarks/train_memory.py --mb=1024 --tokenizer=bpe -- [--config.x=y ...]

The corpus is `benchmarks/data_prep.py`'s (the pydoc topics, shuffled by paragraph, 64 MB files),
with a held-out file of 8 MB. The command trains the runlocal-sized model (`configs/ar.py:runlocal`
by default, `--config`) for `--steps` steps. Every 0.1 s the resident sets of the command and of
all its descendant processes are summed (Linux /proc): the peak of that sum, and of the main
process alone and of its largest child (a tokenising worker), are printed with the wall time.
Linux only.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict:
  """pid -> parent pid, for every process."""
  out = {}
  for d in os.listdir("/proc"):
    if d.isdigit():
      try:
        with open(f"/proc/{d}/stat") as f:
          out[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
      except (OSError, IndexError, ValueError):
        pass
  return out


def _rss(pid: int) -> int:
  try:
    with open(f"/proc/{pid}/statm") as f:
      return int(f.read().split()[1]) * PAGE
  except (OSError, IndexError, ValueError):
    return 0


def tree_rss(root: int) -> tuple[int, int]:
  """(resident bytes of `root` and all its descendants, of `root` alone)."""
  tree, main, _ = tree_rss_children(root)
  return tree, main


def tree_rss_children(root: int) -> tuple[int, int, int]:
  """(resident bytes of `root` and all its descendants, of `root` alone, of its largest
  descendant)."""
  parent = _children()
  tree, frontier = {root}, [root]
  while frontier:
    p = frontier.pop()
    kids = [c for c, pp in parent.items() if pp == p and c not in tree]
    tree.update(kids)
    frontier.extend(kids)
  sizes = {p: _rss(p) for p in tree}
  largest = max((v for p, v in sizes.items() if p != root), default=0)
  return sum(sizes.values()), sizes[root], largest


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--mb", type=int, default=1024, help="generated training corpus size")
  p.add_argument("--tokenizer", default="bpe", choices=["bpe", "sentencepiece"])
  p.add_argument("--vocab_size", type=int, default=4096)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--config", default="configs/ar.py:runlocal")
  p.add_argument("--json", default="")
  p.add_argument("overrides", nargs="*", help="more --config.a.b=value flags (after --)")
  a = p.parse_args()

  root = tempfile.mkdtemp(prefix="aoarm-train-memory-")
  try:
    run(a, root)
  finally:
    shutil.rmtree(root, ignore_errors=True)  # the corpus, the store and the run


def run(a, root: str):
  sys.path.insert(0, os.path.dirname(__file__))
  from data_prep import generate

  os.makedirs(f"{root}/train")
  os.makedirs(f"{root}/valid")
  generate(f"{root}/train", a.mb)
  generate(f"{root}/valid", 8)
  cmd = [
    sys.executable, "-m", "aoarm.main", f"--config={a.config}", f"--workdir={root}/run",
    "--config.data.source=text_files", f"--config.data.train_path={root}/train",
    f"--config.data.valid_path={root}/valid", f"--config.data.tokenizer={a.tokenizer}",
    f"--config.data.vocab_size={a.vocab_size}", f"--config.train.num_steps={a.steps}",
    "--config.train.eval_batches=2", "--config.eval.max_windows=64", *a.overrides,
  ]  # fmt: skip
  t0 = time.perf_counter()
  log = open(f"{root}/stderr.log", "w+")  # a file, not a pipe: a full pipe would stall it
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
  peak_tree = peak_main = peak_child = 0
  while proc.poll() is None:
    tree, main_rss, child = tree_rss_children(proc.pid)
    peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main_rss)
    peak_child = max(peak_child, child)
    time.sleep(0.1)
  wall = time.perf_counter() - t0
  if proc.returncode:
    log.seek(0)
    print(log.read()[-3000:], file=sys.stderr)
    sys.exit(f"the training command failed (exit {proc.returncode})")
  row = {
    "corpus_mb": a.mb,
    "tokenizer": a.tokenizer,
    "vocab_size": a.vocab_size,
    "steps": a.steps,
    "cores": os.cpu_count(),
    "wall_s": round(wall, 1),
    "peak_rss_all_processes_mb": round(peak_tree / 2**20),
    "peak_rss_main_mb": round(peak_main / 2**20),
    "peak_rss_largest_child_mb": round(peak_child / 2**20),
    "command": " ".join(cmd[1:]),
  }
  print(json.dumps(row))
  if a.json:
    with open(a.json, "a") as f:
      f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
