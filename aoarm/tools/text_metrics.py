"""Word-level measures of generated text (word-level corpora such as text8): the share of valid
words, repeated n-grams within a sample, and distinct n-grams across samples.

A sample is a window cut out of running text, so its first and last words may be cut: they are
left out of the valid-word share.
"""

import collections


def vocabulary(text: str) -> set:
  """The words of a (training) text."""
  return set(text.split())


def valid_word_share(samples: list[str], vocab: set) -> float:
  """Share of whole words (each sample's first and last left out) that are in `vocab`."""
  hits = total = 0
  for s in samples:
    ws = s.split()[1:-1]
    hits += sum(w in vocab for w in ws)
    total += len(ws)
  return hits / total if total else float("nan")


def _ngrams(words: list[str], n: int) -> list[tuple]:
  return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def repeated_ngram_rate(samples: list[str], n: int) -> float:
  """Mean over samples of the share of a sample's n-grams that repeat an earlier one of it."""
  rates = []
  for s in samples:
    grams = _ngrams(s.split(), n)
    if grams:
      rates.append(1.0 - len(set(grams)) / len(grams))
  return sum(rates) / len(rates) if rates else float("nan")


def distinct_n(samples: list[str], n: int) -> float:
  """Distinct n-grams across all samples over all n-grams (distinct-n)."""
  counts = collections.Counter(g for s in samples for g in _ngrams(s.split(), n))
  total = sum(counts.values())
  return len(counts) / total if total else float("nan")


def word_metrics(samples: list[str], vocab: set | None) -> dict:
  out = {}
  if vocab is not None:
    out["valid_words"] = valid_word_share(samples, vocab)
  for n in (2, 3, 4):
    out[f"repeat_{n}gram"] = repeated_ngram_rate(samples, n)
    out[f"distinct_{n}"] = distinct_n(samples, n)
  return out
