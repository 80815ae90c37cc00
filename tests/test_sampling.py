"""KV-cached sampling: cached log-probs equal the full forward's, given tokens stay, k = L is one
step, temperature 0 is deterministic, top-p keeps the nucleus."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm import losses
from aoarm.models import traits
from aoarm.sample.sampling import SampleSpec, make_sampler, pick, sample

from helpers import CAUSAL_VARIANTS, init, tiny

# every cached sampler (from the registry), and the `query` sampler's k > 1 and adaptive order
CASES = [(v, 1, "random" if traits(v).random_orders else "l2r") for v in CAUSAL_VARIANTS] + [
  ("two_stream", 3, "random"),
  ("two_stream", 2, "adaptive"),
]
# model options that change the cached path: the query stream in the top block(s) only
OPTION_CASES = [
  ("two_stream", 1, "random", {"num_layers": 3, "query_layers": 1}),
  ("two_stream", 3, "random", {"num_layers": 3, "query_layers": 2}),
  ("two_stream", 2, "adaptive", {"num_layers": 3, "query_layers": 1}),
  ("aogpt", 1, "random", {"own_positions": "learned"}),
]


def _full_logprobs(model, params, x, sigma):
  return -np.asarray(losses.any_order_nll(model.apply, params, x, sigma))


PALLAS_CASES = [
  ("two_stream", 1, "random"),
  ("two_stream", 3, "random"),
  ("decoupled_rope", 1, "random"),
]


@pytest.mark.parametrize(
  "variant,k,order,decode_impl,kw",
  [c + ("xla", {}) for c in CASES]
  + [c[:3] + ("xla", c[3]) for c in OPTION_CASES]
  + [pytest.param(*c, "pallas", {}, marks=pytest.mark.kernels) for c in PALLAS_CASES],
)
def test_cached_logprobs_equal_full_forward(variant, k, order, decode_impl, kw):
  """decode=pallas runs the Triton decode kernel in interpret mode off GPU."""
  cfg = tiny(variant, seq_len=10, decode=decode_impl, **kw)
  model, params, _, _ = init(cfg, sharpen=2.0)
  given = ((4, 3), (7, 1)) if variant != "ar" else ((0, 2), (1, 5), (6, 1))
  spec = SampleSpec(length=10, k=k, order=order, given=given)
  out = make_sampler(model, cfg, spec, batch=3)(params, jax.random.key(1))
  x, sigma, lp = (np.asarray(out[n]) for n in ("tokens", "order", "logprob"))
  for b in range(3):
    assert sorted(sigma[b]) == list(range(10))
  for p, t in given:  # given tokens are never changed
    assert np.all(x[:, p] == t)
  if k == 1:  # exact ancestral sampling: the same conditionals as the full forward
    np.testing.assert_allclose(lp, _full_logprobs(model, params, x, sigma), atol=1e-5)
  else:  # within a step, targets see the same cache: check each chunk's first target
    full = _full_logprobs(model, params, x, sigma)
    P = len(given)
    np.testing.assert_allclose(lp[:, : P + 1], full[:, : P + 1], atol=1e-5)
    for start in range(P, 10, k):
      np.testing.assert_allclose(lp[:, start], full[:, start], atol=1e-5)


def test_two_stream_k_equals_L_is_one_parallel_step():
  cfg = tiny("two_stream", seq_len=8)
  model, params, _, _ = init(cfg, sharpen=2.0)
  spec = SampleSpec(length=8, k=8, order="l2r")
  out = sample(model, params, cfg, spec, jax.random.key(0), 2)
  assert out["num_steps"] == 1
  # every token was predicted from BOS alone: log p(x_p | nothing) = full forward with p first
  x = np.asarray(out["tokens"])
  for p in range(8):
    sigma = jnp.asarray([[p] + [q for q in range(8) if q != p]] * 2)
    full = _full_logprobs(model, params, jnp.asarray(x), sigma)
    np.testing.assert_allclose(np.asarray(out["logprob"])[:, p], full[:, 0], atol=1e-5)


@pytest.mark.parametrize("variant", ["two_stream", "decoupled_rope", "mdm"])
def test_temperature_zero_is_deterministic(variant):
  cfg = tiny(variant, seq_len=8)
  model, params, _, _ = init(cfg, sharpen=2.0)
  spec = SampleSpec(length=8, temperature=0.0, order="l2r")
  f = make_sampler(model, cfg, spec, batch=2)
  a, b = f(params, jax.random.key(0)), f(params, jax.random.key(99))
  np.testing.assert_array_equal(np.asarray(a["tokens"]), np.asarray(b["tokens"]))
  hot = make_sampler(model, cfg, SampleSpec(length=8, temperature=1.0), batch=8)
  h1, h2 = hot(params, jax.random.key(0)), hot(params, jax.random.key(1))
  assert not np.array_equal(np.asarray(h1["tokens"]), np.asarray(h2["tokens"]))


def test_mdm_sampler_keeps_given_and_fills_everything():
  cfg = tiny("mdm", seq_len=12)
  model, params, _, _ = init(cfg, sharpen=2.0)
  spec = SampleSpec(length=12, given=((0, 1), (5, 2)), mdm_steps=4)
  out = make_sampler(model, cfg, spec, batch=3)(params, jax.random.key(0))
  x = np.asarray(out["tokens"])
  assert np.all(x[:, 0] == 1) and np.all(x[:, 5] == 2)
  assert x.max() < cfg.vocab_size  # no MASK left
  assert all(sorted(s) == list(range(12)) for s in np.asarray(out["order"]))
  assert set(np.asarray(out["order"])[0, :2]) == {0, 5}  # given first


def test_top_p_keeps_the_nucleus():
  logits = jnp.log(jnp.array([[[0.5, 0.3, 0.15, 0.05]]]))
  draws = {int(pick(logits, jax.random.key(i), 1.0, 0.7)[0, 0]) for i in range(200)}
  assert draws == {0, 1}
  draws = {int(pick(logits, jax.random.key(i), 1.0, 1.0)[0, 0]) for i in range(400)}
  assert draws == {0, 1, 2, 3}


def test_bad_specs():
  cfg = tiny("decoupled_rope", seq_len=8)
  with pytest.raises(ValueError, match="several targets per step need a two-stream model"):
    SampleSpec(length=8, k=2).validate("decoupled_rope", 11)
  with pytest.raises(ValueError, match="sample.k=0 must be at least 1"):
    SampleSpec(length=8, k=0).validate("two_stream", 11)
  with pytest.raises(ValueError, match="adaptive"):
    SampleSpec(length=8, order="adaptive").validate(cfg.variant, 11)
  with pytest.raises(ValueError, match="distinct"):
    SampleSpec(length=8, given=((9, 1),)).validate(cfg.variant, 11)
  with pytest.raises(ValueError, match="JAX_ENABLE_X64"):
    SampleSpec(length=8, precision="float64").validate(cfg.variant, 11)
  with pytest.raises(ValueError, match="precision"):
    SampleSpec(length=8, precision="float16").validate(cfg.variant, 11)


@pytest.mark.parametrize("variant", ["two_stream", "decoupled_rope", "mdm"])
def test_a_passed_temperature_is_the_specs_without_recompiling(variant):
  """A frontier's temperatures share one compiled sampler: passing t to the call gives what a
  sampler built with temperature t gives, bit for bit, and compiles once."""
  cfg = tiny(variant, seq_len=8)
  model, params, _, _ = init(cfg, sharpen=2.0)
  shared = make_sampler(model, cfg, SampleSpec(length=8), batch=4)
  for t in (0.5, 1.7):
    got = shared(params, jax.random.key(3), jnp.float32(t))
    want = make_sampler(model, cfg, SampleSpec(length=8, temperature=t), batch=4)(
      params, jax.random.key(3)
    )
    np.testing.assert_array_equal(np.asarray(got["tokens"]), np.asarray(want["tokens"]))
  assert shared._cache_size() == 1


def test_float64_draw_runs_in_float64_and_follows_the_softmax():
  """precision=float64: the tempered logits and the Gumbel noise are float64 (the float32
  noise's tail is cut near 16.6); the draws still follow softmax(logits / T)."""
  logits = jnp.log(jnp.array([[[0.6, 0.25, 0.1, 0.05]]], jnp.float32))
  with jax.enable_x64(True):
    jaxpr = str(jax.make_jaxpr(lambda r: pick(logits, r, 0.8, 1.0, "float64"))(jax.random.key(0)))
    assert "f64" in jaxpr
    keys = jax.random.split(jax.random.key(0), 20000)
    draws = np.asarray(jax.vmap(lambda r: pick(logits, r, 0.8, 1.0, "float64"))(keys)).ravel()
  assert "f64" not in str(jax.make_jaxpr(lambda r: pick(logits, r, 0.8, 1.0))(jax.random.key(0)))
  p = np.asarray(jax.nn.softmax(logits[0, 0] / 0.8))
  freq = np.bincount(draws, minlength=4) / draws.size
  np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / draws.size).max())


@pytest.mark.parametrize("variant,k,order", CASES + [("mdm", 1, "random")])
def test_float64_sampling_of_every_sampler(variant, k, order):
  """Every sampler runs with the float64 draw (64-bit JAX, float32 model), and exact samplers'
  log-probs still equal the full forward's."""
  cfg = tiny(variant, seq_len=8)
  model, params, _, _ = init(cfg, sharpen=2.0)
  spec = SampleSpec(length=8, k=k, order=order, precision="float64")
  with jax.enable_x64(True):
    out = make_sampler(model, cfg, spec, batch=3)(params, jax.random.key(1), 0.9)
    out = jax.tree.map(np.asarray, out)
  assert out["tokens"].dtype == np.int32 and out["logprob"].dtype == np.float32
  assert out["tokens"].max() < cfg.vocab_size
  if k == 1 and variant != "mdm":
    full = _full_logprobs(model, params, out["tokens"], out["order"])
    np.testing.assert_allclose(out["logprob"], full, atol=1e-5)
