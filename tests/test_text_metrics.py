"""Word-level measures of samples, on texts whose answers are known."""

import math

from aoarm.tools import text_metrics as tm


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


def test_a_frontier_line_at_a_given_entropy():
  """Matched-entropy comparison: linear between the two temperatures around the entropy."""
  from aoarm.tools import frontier_plot as fp

  line = [
    {"unigram_entropy": 2.0, "valid_words": 0.9, "temperature": 0.5},
    {"unigram_entropy": 3.0, "valid_words": 0.5, "temperature": 1.0},
  ]
  assert math.isclose(fp.at_entropy(line, "valid_words", 2.25), 0.8)
  assert fp.at_entropy(line, "valid_words", 3.5) is None
  rows = [dict(r, run="a", sampler="k=1", variant="x", seq_len=8) for r in line] + [
    {
      "run": "d",
      "sampler": "held-out text",
      "variant": "data",
      "seq_len": 8,
      "temperature": None,
      "unigram_entropy": 2.5,
      "valid_words": 1.0,
    }
  ]
  table = fp.matched_table(rows, "valid_words")
  assert "| 8 | a | x | k=1 |  | 0.700 | 0.500 |" in table


def test_the_matched_table_gives_gen_perplexity_its_error_across_samples():
  """With each point's `gen_nll_stderr`, gen perplexity reads `value ± value * stderr`, the
  stderr interpolated at the data's entropy like the value; rows without it print no ±."""
  from aoarm.tools import frontier_plot as fp

  line = [
    {"unigram_entropy": 2.0, "gen_perplexity": 10.0, "gen_nll_stderr": 0.1, "temperature": 0.5},
    {"unigram_entropy": 3.0, "gen_perplexity": 20.0, "gen_nll_stderr": 0.3, "temperature": 1.0},
  ]
  data = {"run": "d", "sampler": "held-out text", "variant": "data", "seq_len": 8}
  data.update(temperature=None, unigram_entropy=2.5, gen_perplexity=4.0)
  rows = [dict(r, run="a", sampler="k=1", variant="x", seq_len=8) for r in line] + [data]
  assert "| 8 | a | x | k=1 |  | 15.000 ± 3.000 | 20.000 ± 6.000 |" in fp.matched_table(
    rows, "gen_perplexity"
  )
  for r in line:
    del r["gen_nll_stderr"]
  rows = [dict(r, run="a", sampler="k=1", variant="x", seq_len=8) for r in line] + [data]
  assert "| 8 | a | x | k=1 |  | 15.000 | 20.000 |" in fp.matched_table(rows, "gen_perplexity")


def test_the_frontier_table_command_picks_a_key_the_rows_have(tmp_path, capsys):
  """Issue 36 (6): `python -m aoarm.tools.frontier_plot front.json` crashed with KeyError
  'valid_words' on a judge-scored file; it now takes gen_perplexity where every row has it,
  and a missing key or a malformed file is one line, exit 2."""
  import json

  import pytest

  from aoarm.tools import frontier_plot as fp

  rows = [
    {"run": "r1/", "sampler": "k=1", "variant": "two_stream", "seq_len": 8, "temperature": t,
     "unigram_entropy": h, "gen_perplexity": g}
    for t, h, g in ((0.5, 2.0, 10.0), (1.0, 3.0, 20.0))
  ]  # fmt: skip
  path = tmp_path / "front.json"
  path.write_text(json.dumps(rows))
  fp.main([str(path)])
  assert "| 8 | r1 | two_stream | k=1 |" in capsys.readouterr().out
  for argv, msg in (([str(path), "--key=valid_words"], "--key=valid_words"),
                    ([str(tmp_path / "nope.json")], "cannot be read")):  # fmt: skip
    with pytest.raises(SystemExit) as e:
      fp.main(argv)
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_a_frontier_with_several_seeds_gives_their_mean_and_t_interval():
  """Issue 31 (4): the lines of one arm's training seeds (runs named ..._seed<N>) are one row of
  the seed table, mean ± t 95% (n - 1 dof) with n; a one-seed arm says so; the plot draws the
  seeds of an arm in one colour."""
  from scipy import stats

  from aoarm.tools import frontier_plot as fp

  rows = []
  for seed, shift in ((0, 0.0), (1, 2.0), (2, 4.0)):
    for h, ppl, t in ((2.0, 10.0, 0.5), (3.0, 20.0, 1.0)):
      rows.append(
        dict(run=f"runs/two_stream_seq_len8_seed{seed}", train_seed=seed, sampler="k=1",
             variant="two_stream", seq_len=8, unigram_entropy=h, gen_perplexity=ppl + shift,
             temperature=t)
      )  # fmt: skip
  rows += [
    dict(run="runs/mdm_seq_len8_seed0", train_seed=0, sampler="steps=8", variant="mdm",
         seq_len=8, unigram_entropy=h, gen_perplexity=p, temperature=t)
    for h, p, t in ((2.0, 30.0, 0.5), (3.0, 40.0, 1.0))
  ]  # fmt: skip
  rows.append(dict(run="d", sampler="held-out text", variant="data", seq_len=8, temperature=None,
                   unigram_entropy=2.5, gen_perplexity=4.0))  # fmt: skip
  assert fp.arm(rows[0]) == fp.arm(rows[2]) == "two_stream_seq_len8"
  assert fp.arm(dict(run="x_seed1", train_seed=10)) == "x_seed1"  # seed10's digits, not seed1's
  table = fp.seed_table(rows, "gen_perplexity")
  half = stats.t.ppf(0.975, 2) * 2.0 / 3**0.5  # values 15, 17, 19: std 2
  assert (
    f"| 8 | two_stream_seq_len8 | k=1 | 3 | 17.000 ± {half:.3f} | 22.000 ± {half:.3f} |" in table
  )
  assert "| 8 | mdm_seq_len8 | steps=8 | 1 | 35.000 (1 seed) | 40.000 (1 seed) |" in table
  fp.plot(rows, "/dev/null", 8)  # draws (colours shared by seeds) without error
