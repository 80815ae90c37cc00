"""The training system: meshes agree with one device, resume is exact, SIGTERM saves, a corrupt
checkpoint is skipped, eval writes its JSON, and no model beats a known entropy."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aoarm.data.markov import MarkovSource
from aoarm.data.pipeline import TrainBatches
from aoarm.infra import sharding
from aoarm.infra.checkpointing import Checkpointer
from aoarm.models import ModelConfig
from aoarm.run import modes, setup
from aoarm.run.train import Trainer
from aoarm.run.train_config import TrainConfig
from aoarm.sample import front

from helpers import AOGPT_CONFIG, damage_checkpoint_arrays, losses_by_step, tiny_run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # every test here trains a run (in-process or a subprocess)


@pytest.mark.parametrize(
  "variant,norm_impl,over",
  [
    ("two_stream", "xla", {}),
    ("decoupled_rope", "xla", {}),
    ("mdm", "xla", {}),
    ("aogpt", "xla", AOGPT_CONFIG),  # biases sharded by their logical axes too
    pytest.param("two_stream", "pallas", {}, marks=pytest.mark.kernels),
  ],
)
def test_8_device_meshes_match_one_device(variant, norm_impl, over):
  """norm=pallas: the RMSNorm kernels (interpret mode) per device under the meshes."""
  assert len(jax.devices()) == 8
  c = tiny_run_config(variant, **{"model.kernels.norm": norm_impl}, **over)
  c.opt.grad_accum = 2
  mcfg = ModelConfig.from_config(dict(c.model, vocab_size=8), seq_len=16)
  batches = TrainBatches(MarkovSource(8).sample(5000), 16, 8, seed=0)
  results = {}
  for name, shape, devs in [
    ("one", (1, 1, 1), jax.devices()[:1]),
    ("data x fsdp", (4, 2, 1), jax.devices()),
    ("data x tensor", (4, 1, 2), jax.devices()),
  ]:
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = shape
    mesh = sharding.make_mesh(c.mesh, devs)
    trainer = Trainer(TrainConfig.from_config(c), mcfg, mesh)
    state = trainer.init_state(jax.random.key(0))
    out = []
    for step in range(3):
      state, m = trainer.train_step(state, sharding.global_batch(batches.batch(step), mesh))
      out.append(float(m["loss"]))
    results[name] = out
  for name in ("data x fsdp", "data x tensor"):
    np.testing.assert_allclose(results[name], results["one"], rtol=2e-5, err_msg=name)
  assert results["one"][2] != results["one"][0]


def test_activation_constraints_are_live_under_a_mesh():
  """The logical activation constraints (block boundaries, attention inputs, MLP hidden) reach
  the compiled step: flax drops them silently when no mesh is in context."""
  c = tiny_run_config("two_stream")
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = (4, 1, 2)
  mcfg = ModelConfig.from_config(dict(c.model, vocab_size=8), seq_len=16)
  trainer = Trainer(TrainConfig.from_config(c), mcfg, sharding.make_mesh(c.mesh, jax.devices()))
  x = jax.ShapeDtypeStruct((8, 16), jnp.int32, sharding=trainer.batch_sharding)
  text = trainer.train_step.lower(trainer.abstract_state, x).as_text()
  n = text.count("sharding_constraint")
  assert n >= 4 * mcfg.num_layers, n  # several per block, forward and backward
  assert '{"tensor"}' in text  # the heads / MLP-hidden constraints name the tensor axis


def test_resume_after_kill_reproduces_losses(tmp_path):
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  assert modes.train(tiny_run_config(), full) == 0
  # A run killed after step 6: its checkpoint at 4 survives, the one being written at 6 is lost.
  c = tiny_run_config()
  c.train.num_steps = 12
  c.ckpt.every_steps = 2
  assert modes.train(_stopping_at(c, 6), killed) == 0
  assert sorted(os.listdir(os.path.join(killed, "ckpt")))[-1] == "6"
  shutil.rmtree(os.path.join(killed, "ckpt", "6"))
  assert modes.train(tiny_run_config(), killed) == 0  # resumes from step 4
  a, b = losses_by_step(full), losses_by_step(killed)
  assert sorted(a) == sorted(b) == list(range(1, 13))
  assert [a[s] for s in a] == [b[s] for s in a]  # exactly equal, every step
  with open(os.path.join(killed, "metrics.jsonl")) as f:  # steps 5, 6 were replayed: logged once
    steps = [r["step"] for r in map(json.loads, f) if "train/loss" in r]
  assert steps == list(range(1, 13))


def _stopping_at(c, step):
  """The same run, stopped (with a checkpoint) after `step`: the schedule still spans num_steps."""
  c.train.stop_after = step
  return c


def test_sigterm_saves_and_exits_zero(tmp_path):
  wd = str(tmp_path / "run")
  args = [
    sys.executable,
    "-m",
    "aoarm.main",
    "--config=configs/two_stream.py:runlocal",
    f"--workdir={wd}",
    "--config.data.source=markov",
    "--config.data.seq_len=16",
    "--config.model.num_layers=1",
    "--config.model.d_model=32",
    "--config.train.num_steps=100000",
    "--config.train.log_every=1",
    "--config.ckpt.every_steps=100000",
  ]
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  metrics = os.path.join(wd, "metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3:
      break
    time.sleep(0.2)
  assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err.decode()[-2000:]
  steps = [int(s) for s in os.listdir(os.path.join(wd, "ckpt")) if s.isdigit()]
  assert steps and max(steps) >= 3 and max(steps) < 100000


def test_corrupt_latest_checkpoint_falls_back(tmp_path, caplog):
  wd = str(tmp_path / "run")
  assert modes.train(tiny_run_config(), wd) == 0  # checkpoints at 4, 8, 12 (keep 3)
  damage_checkpoint_arrays(os.path.join(wd, "ckpt", "12", "state"))
  caplog.set_level("WARNING")
  out = modes.evaluate_checkpoint(tiny_run_config(), wd)
  assert out["step"] == 8
  assert any("is damaged" in r.message for r in caplog.records)


def test_eval_json_and_entropy_bound(tmp_path):
  wd = str(tmp_path / "run")
  c = tiny_run_config("two_stream", **{"train.num_steps": 150})
  c.eval.max_windows = 0  # the whole held-out split
  c.eval.num_orders = 2
  assert modes.train(c, wd) == 0
  out = modes.evaluate_checkpoint(c, wd)
  path = os.path.join(wd, "eval", "step_150-k2.json")  # num_orders=2 names its own file
  assert out["capped"] is False and out["windows_in_split"] == out["num_windows"]
  with open(path) as f:
    saved = json.load(f)
  for key in (
    "nll_per_token",
    "bits_per_token",
    "perplexity",
    "num_tokens",
    "stderr",
    "split",
    "order",
    "num_orders",
  ):
    assert key in saved, key
  assert saved["split"] == "valid" and saved["num_orders"] == 2
  assert saved["num_tokens"] == (1000 // 16) * 16  # every window of the 5% held-out tail
  assert set(saved["by_order"]) == {"random", "l2r"}
  np.testing.assert_allclose(saved["bits_per_token"], saved["nll_per_token"] / np.log(2))
  np.testing.assert_allclose(saved["perplexity"], np.exp(saved["nll_per_token"]))
  # learned something, and never below the source's entropy
  for r in saved["by_order"].values():
    assert r["nll_per_token"] > r["true_nll_per_token"] - 3 * r["stderr"]
  assert out["nll_per_token"] < np.log(8)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, caplog):
  wd = str(tmp_path / "run")
  c = tiny_run_config(**{"train.num_steps": 12})
  c.opt.update(lr=1e12, clip_norm=0.0, warmup_steps=0)
  c.ckpt.every_steps = 1
  caplog.set_level("ERROR")
  assert modes.train(c, wd) == 1
  assert any("non-finite" in r.message for r in caplog.records)
  steps = [int(s) for s in os.listdir(os.path.join(wd, "ckpt")) if s.isdigit()]
  assert max(steps) < 12  # stopped early
  run = setup.prepare(c, wd, "eval")  # the kept checkpoint restores, all finite
  trainer = Trainer(TrainConfig.from_config(c), run.mcfg, run.mesh)
  state, _, step, _ = Checkpointer(run.ckpt_dir, read_only=True).restore_latest(
    trainer.abstract_state
  )
  assert step == max(steps)
  assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(state.params))
  logged = losses_by_step(wd)
  assert all(np.isfinite(logged[s]) for s in range(1, step + 1))


@pytest.mark.parametrize("variant,primary", [("ar", "l2r"), ("mdm", "elbo")])
def test_eval_primary_order_per_variant(tmp_path, variant, primary):
  wd = str(tmp_path / variant)
  c = tiny_run_config(variant)
  c.eval.num_orders = 2
  assert modes.train(c, wd) == 0
  out = modes.evaluate_checkpoint(c, wd)
  assert set(out["by_order"]) == {primary} and out["order"] == primary
  assert out["num_orders"] == (1 if variant == "ar" else 2)
  assert out["nll_per_token"] > out["true_nll_per_token"] - 3 * out["stderr"]


def test_profile_window_writes_a_trace(tmp_path):
  wd = str(tmp_path / "run")
  assert modes.train(tiny_run_config(**{"train.profile": "2:4"}), wd) == 0
  traces = [f for _, _, fs in os.walk(os.path.join(wd, "profile")) for f in fs]
  assert any(f.endswith(".xplane.pb") for f in traces), traces


def test_mfu_is_logged_against_the_devices_own_peak(tmp_path):
  from aoarm.run import flops

  assert flops.device_peak("NVIDIA H200") == flops.device_peak("NVIDIA H100 80GB HBM3") == 989e12
  assert flops.device_peak("TPU v5 lite") == 197e12 and flops.device_peak("cpu") is None
  wd = str(tmp_path / "run")
  assert modes.train(tiny_run_config(**{"train.num_steps": 2}), wd) == 0
  with open(os.path.join(wd, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert any("train/loss" in r for r in rows)
  assert not any(k.startswith("train/mfu") for r in rows for k in r)  # a CPU has no known peak


def test_eval_and_sample_run_on_the_runs_saved_config(tmp_path, caplog):
  """Issue 19: eval and sample need no repeat of the training overrides. A command line that
  forgot `data.source=markov` (and changed the model) evaluates the run as trained, names the
  ignored keys in one warning, and still takes its own eval keys."""
  wd = str(tmp_path / "run")
  c = tiny_run_config("two_stream")
  assert modes.train(c, wd) == 0
  caplog.set_level("WARNING")
  same = modes.evaluate_checkpoint(c, wd)
  assert not [r for r in caplog.records if "saved config.json" in r.message]
  forgot = c.copy_and_resolve_references()
  forgot.data.source = "pydoc"
  forgot.model.d_model = 64
  forgot.eval.max_windows = 16
  out = modes.evaluate_checkpoint(forgot, wd)
  (warning,) = [r.message for r in caplog.records if "saved config.json" in r.message]
  assert "data.source='pydoc' (run: 'markov')" in warning and "model.d_model=64" in warning
  assert "max_windows" not in warning
  assert out["num_windows"] == 16 < same["num_windows"]
  forgot.sample.num_samples = 2
  assert front.sample(forgot, wd) == 0
  # the managers opened read-only on purpose no longer warn about it
  assert not [r for r in caplog.records if "read only" in r.getMessage()]
