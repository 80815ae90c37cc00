"""A synthetic first-order Markov source with known entropy (for tests and sanity checks).

Windows of L consecutive tokens from a stationary chain have joint entropy H(pi) + (L-1) H_rate,
so every model's expected held-out NLL per token, in any order, is bounded below by
`true_nll_per_token(L)`: a model that goes under it has a leak.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MarkovSource:
  vocab: int = 8
  concentration: float = 0.3
  seed: int = 0

  @property
  def transition(self) -> np.ndarray:
    rng = np.random.default_rng(self.seed)
    return rng.dirichlet(np.full(self.vocab, self.concentration), size=self.vocab)

  @property
  def stationary(self) -> np.ndarray:
    w, v = np.linalg.eig(self.transition.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return pi / pi.sum()

  def entropy_rate(self) -> float:
    P = self.transition
    h_rows = -(P * np.log(np.where(P > 0, P, 1))).sum(1)
    return float(self.stationary @ h_rows)

  def true_nll_per_token(self, length: int) -> float:
    pi = self.stationary
    h0 = float(-(pi * np.log(np.where(pi > 0, pi, 1))).sum())
    return (h0 + (length - 1) * self.entropy_rate()) / length

  def sample(self, num_tokens: int, seed: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
    cdf = np.cumsum(self.transition, axis=1)
    out = np.empty(num_tokens, np.int32)
    s = rng.choice(self.vocab, p=self.stationary)
    u = rng.random(num_tokens)
    for i in range(num_tokens):
      out[i] = s
      s = min(int(np.searchsorted(cdf[s], u[i], side="right")), self.vocab - 1)
    return out
