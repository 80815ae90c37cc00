"""The subword experiment's corpus (issue 33, 4): every text source of a raw folder split into
OUT/train, OUT/valid and OUT/test by lines (a .jsonl line is one document): each source's first
90% of lines train, the next 5% valid, the last 5% test, so every source is in every split.

  python launch/subword_corpus.py --raw=../shared/data/raw --out=/tmp/corpus

Taken: every file under --raw except metadata (README*, SOURCE.txt, MANIFEST.tsv, *.tsv) and
the files --skip names; by default WikiText-2's `wiki.test.tokens`, the same text as its
`wiki.test.raw` in tokenised form (both would put one text in two splits' worth of lines).
`wiki.valid.tokens` is another text and is taken. Prints every file taken and skipped with its
size, and writes OUT/corpus.json (the same list, with each split's bytes per source).
Refuses a non-empty --out; each file is written whole or not at all.
"""

import argparse
import json
import os
import sys

META = ("SOURCE.txt", "MANIFEST.tsv")
SKIP = "wikitext-2/wiki.test.tokens"
SPLITS = (("train", 0.0, 0.90), ("valid", 0.90, 0.95), ("test", 0.95, 1.0))


def _is_meta(rel: str) -> bool:
  name = os.path.basename(rel)
  return name in META or name.startswith("README") or name.endswith(".tsv")


def _write(path: str, lines: list[str]) -> int:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(lines)
  os.replace(tmp, path)
  return os.path.getsize(path)


def build(raw: str, out: str, skip: set[str]) -> dict:
  if os.path.isdir(out) and os.listdir(out):
    raise SystemExit(f"subword_corpus: --out={out} is not empty")
  files = sorted(os.path.relpath(os.path.join(d, f), raw) for d, _, fs in os.walk(raw) for f in fs)
  if not files:
    raise SystemExit(f"subword_corpus: --raw={raw} holds no files")
  unknown = skip - set(files)
  if unknown:
    raise SystemExit(f"subword_corpus: --skip names files not in --raw: {sorted(unknown)}")
  for split, _, _ in SPLITS:
    os.makedirs(os.path.join(out, split), exist_ok=True)
  record = {"raw": os.path.abspath(raw), "taken": {}, "skipped": {}}
  for rel in files:
    size = os.path.getsize(os.path.join(raw, rel))
    if _is_meta(rel) or rel in skip:
      record["skipped"][rel] = size
      print(f"skipped {rel} ({size:,} bytes: {'metadata' if _is_meta(rel) else '--skip'})")
      continue
    with open(os.path.join(raw, rel), encoding="utf-8") as f:
      lines = f.readlines()
    name = rel.replace(os.sep, "_")
    if not name.endswith((".txt", ".jsonl")):  # .raw, .tokens: text, read as .txt
      name += ".txt"
    sizes = {}
    for split, lo, hi in SPLITS:
      part = lines[int(len(lines) * lo) : int(len(lines) * hi)]
      sizes[split] = _write(os.path.join(out, split, name), part)
    record["taken"][rel] = {"bytes": size, "lines": len(lines), **sizes}
    print(
      f"taken {rel} ({size:,} bytes, {len(lines):,} lines): "
      + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    )
  total = {s: sum(v[s] for v in record["taken"].values()) for s, _, _ in SPLITS}
  record["total_bytes"] = total
  print("total: " + ", ".join(f"{k} {v:,} bytes" for k, v in total.items()))
  with open(os.path.join(out, "corpus.json"), "w") as f:
    json.dump(record, f, indent=1)
  return record


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--raw", required=True)
  p.add_argument("--out", required=True)
  p.add_argument(
    "--skip", default=SKIP, help="comma list of files (relative to --raw) to leave out"
  )
  a = p.parse_args(argv)
  if not os.path.isdir(a.raw):
    sys.exit(f"subword_corpus: --raw={a.raw} is not a folder")
  build(a.raw, a.out, {s for s in a.skip.split(",") if s})


if __name__ == "__main__":
  main()
