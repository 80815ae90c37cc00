"""Word-level measures of samples, on texts whose answers are known."""

import math

from aoarm import text_metrics as tm


def test_valid_words_leave_out_the_cut_ends():
  vocab = tm.vocabulary("the cat sat on the mat")
  # 'xq' (first) and 'zz' (last) may be cut words: only 'the cat sat qq' is judged
  assert tm.valid_word_share(["xq the cat sat qq zz"], vocab) == 0.75
  assert math.isnan(tm.valid_word_share(["one two"], vocab))


def test_repeats_and_distinct_ngrams():
  a, b = "a b a b a b", "c d e f"
  # a: bigrams ab ba ab ba ab -> 2 distinct of 5; b: 3 distinct of 3
  assert tm.repeated_ngram_rate([a], 2) == 1 - 2 / 5
  assert tm.repeated_ngram_rate([a, b], 2) == ((1 - 2 / 5) + 0.0) / 2
  assert tm.distinct_n([a, b], 2) == (2 + 3) / (5 + 3)
  m = tm.word_metrics([a, b], tm.vocabulary("a b c d e f"))
  assert m["valid_words"] == 1.0 and set(m) >= {"repeat_4gram", "distinct_3"}
