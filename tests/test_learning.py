"""Every variant learns, and none goes below a known entropy (issue 34, item 4).

On the Markov source (8 symbols, uniform 2.079 nats, the unigram 2.015, the source's true NLL
for a window 1.461) each variant of the registry, and the options that change what a model is,
trains the suite's tiny model and must end at least 0.1 nats below uniform on the whole
held-out split, in every order it is scored in, without going below the true NLL.

The budget is 1500 steps, not the 150 of earlier suites: in 150 steps AO-GPT's own PyTorch
model and training step stay at the unigram level on this source (2.024 ± 0.007 nats, 3 seeds),
as do aoarm's aogpt (2.023), sigma_gpt (2.025) and mdm (2.016), while two_stream is at 1.81;
at 1500 steps their code reaches 1.80 ± 0.30 and aoarm's aogpt with their parts 1.91 ± 0.04
(`benchmarks/aogpt_torch_markov.py`, RESULTS.md). Slow learning is AO-GPT's design (its gates
start near 0), which its own code shows, not a defect of aoarm's. aoarm's own aogpt option, own
positions by RoPE and the target only in the adaptive norms, is slower still (2.002 nats at 1500
steps: its residual stream holds no absolute own position, see docs/variants.md) and gets twice
the budget (1.943 at 3000).
"""

import numpy as np
import pytest

from aoarm.models import VARIANTS
from aoarm.run import modes

from helpers import AOGPT_CONFIG, case_id, tiny_run_config

pytestmark = pytest.mark.slow

STEPS = 1500
MARGIN = 0.1  # nats below uniform
CASES = [(v, {}) for v in VARIANTS] + [
  ("aogpt", AOGPT_CONFIG),  # AO-GPT's own model: learned own positions, biases, ...
  ("two_stream", {"model.query_layers": 1}),  # the query stream in the top block only
]
SLOWER = {("aogpt", ()): 2 * STEPS}  # (variant, options) -> its budget, where not STEPS


def _id(case):
  return "aogpt-their_parts" if case[1] == AOGPT_CONFIG else case_id(case)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_every_variant_learns_and_stays_above_the_entropy(tmp_path, case):
  variant, over = case
  steps = SLOWER.get((variant, tuple(sorted(over.items()))), STEPS)
  wd = str(tmp_path / "run")
  c = tiny_run_config(
    variant,
    **{"train.num_steps": steps, "train.log_every": steps // 3, "ckpt.every_steps": steps},
    **over,
  )
  c.train.final_eval = False
  c.eval.update(max_windows=0, num_orders=2)  # the whole held-out split, two orders a window
  assert modes.train(c, wd) == 0
  out = modes.evaluate_checkpoint(c, wd)
  uniform = np.log(c.data.markov_vocab)
  for order, r in out["by_order"].items():
    assert r["nll_per_token"] > r["true_nll_per_token"] - 3 * r["stderr"], order
    assert r["nll_per_token"] < uniform - MARGIN, (order, r["nll_per_token"])
  print(_id(case), steps, {k: round(r["nll_per_token"], 4) for k, r in out["by_order"].items()})
