"""The benchmark scripts' own logic: the profile summary and the data-parallel scaling runs."""

import gzip
import json
import math
import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


def test_profile_summary_groups_device_events(tmp_path):
  import profile_step

  trace = {
    "traceEvents": [
      {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
      {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "Stream #1"}},
      {"ph": "M", "name": "process_name", "pid": 3, "args": {"name": "/host:CPU"}},
      {"ph": "X", "pid": 1, "tid": 2, "name": "gemm", "ts": 0, "dur": 3000},
      {"ph": "X", "pid": 1, "tid": 2, "name": "gemm", "ts": 5, "dur": 1000},
      {"ph": "X", "pid": 1, "tid": 2, "name": "scatter", "ts": 9, "dur": 4000},
      {"ph": "X", "pid": 3, "tid": 4, "name": "python", "ts": 0, "dur": 9999},
    ]
  }
  d = tmp_path / "plugins" / "profile" / "run"
  d.mkdir(parents=True)
  with gzip.open(d / "perfetto_trace.json.gz", "wt") as f:
    json.dump(trace, f)
  out = profile_step.summarise(profile_step.load_trace(str(tmp_path)), steps=2, top=5)
  assert list(out) == ["/device:GPU:0 | Stream #1"]  # host events left out when a device exists
  s = out["/device:GPU:0 | Stream #1"]
  assert s["busy_ms_per_step"] == 4.0
  top = {r["name"]: r for r in s["top"]}
  assert top["gemm"]["ms_per_step"] == 2.0 and top["gemm"]["n"] == 1.0
  assert top["scatter"]["share"] == 0.5


def test_model_overrides_take_their_defaults_types():
  """`--model=query_layers=1,kernels.norm=xla`: numbers stay numbers, names stay names."""
  import train_throughput

  kw = train_throughput.model_overrides("query_layers=1,kernels.norm=xla")
  r = train_throughput.bench("two_stream", "runlocal", 4, steps=1, warmup=1, devices=1, model_kw=kw)
  assert r["loss"] > 0


def test_scaling_runs_use_the_first_n_devices():
  import train_throughput

  assert len(jax.devices()) >= 2
  r1 = train_throughput.bench("ar", "runlocal", 4, steps=1, warmup=1, devices=1)
  r2 = train_throughput.bench("ar", "runlocal", 8, steps=1, warmup=1, devices=2)
  assert (r1["devices"], r2["devices"]) == (1, 2)
  assert r2["tokens_per_s_per_device"] == r2["tokens_per_s"] / 2
  assert r1["loss"] > 0 and r2["loss"] > 0


def test_a_gpu_kernel_benchmark_refuses_a_cpu_in_one_line():
  import subprocess

  root = os.path.join(os.path.dirname(__file__), "..")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=root)
  res = subprocess.run(
    [sys.executable, "benchmarks/rmsnorm_kernel.py"],
    capture_output=True,
    text=True,
    cwd=root,
    env=env,
    timeout=120,
  )
  assert res.returncode == 2 and "this backend is cpu" in res.stderr


def test_train_memory_sums_the_whole_process_tree():
  """benchmarks/train_memory.py's peak is over the command and every process it starts."""
  import subprocess
  import time

  import train_memory

  code = "import time; x = bytearray(200 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(60)"
  child = subprocess.Popen([sys.executable, "-c", code])
  try:
    deadline = time.time() + 30
    while train_memory.tree_rss(child.pid)[1] < 190 << 20 and time.time() < deadline:
      time.sleep(0.05)
    tree, mine = train_memory.tree_rss(os.getpid())
    assert train_memory.tree_rss(child.pid)[1] >= 190 << 20
    assert tree >= mine + (190 << 20)  # the child's pages count towards this process's tree
  finally:
    child.kill()
    child.wait()


def test_a_plateau_is_left_only_for_good():
  """benchmarks/aogpt_plateau.py: the step where the loss leaves its plateau and stays below."""
  import aogpt_plateau

  flat = {50: 2.84, 100: 2.7, 150: 2.85, 200: 2.83}  # one low batch, then back
  assert aogpt_plateau.left_plateau(flat, 0.1) is None
  falling = {50: 2.84, 100: 2.83, 150: 2.6, 200: 2.5, 250: 2.4}
  assert aogpt_plateau.left_plateau(falling, 0.1) == 150
  assert aogpt_plateau.left_plateau(falling, 0.5) is None


@pytest.mark.slow
def test_the_plateau_benchmark_runs_its_arms(tmp_path):
  import aogpt_plateau

  out = tmp_path / "rows.jsonl"
  aogpt_plateau.main(
    ["--arms=aogpt_learned_l2r10", "--steps=10", "--every=5", "--seq_len=16", "--batch=8",
     "--eval_windows=4", f"--json={out}"]
  )  # fmt: skip
  (row,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert row["arm"] == "aogpt_learned_l2r10" and row["data"] == "pydoc"
  assert sorted(row["loss"], key=int) == ["5", "10"] and row["valid_bits"] > 0
  with pytest.raises(SystemExit, match="'nope' is not one of"):
    aogpt_plateau.main(["--arms=nope"])


@pytest.mark.slow
def test_the_eval_speed_benchmark_times_every_order_a_variant_reports():
  """Issue 32 (2): one row per order (two_stream: random and left to right; mdm: its ELBO over
  K rates), each scored twice (compile, then the eval itself) beside the training step's rate."""
  import eval_speed

  rows = eval_speed.bench("two_stream", "runlocal", 64, 64 * 40, 3, 1)
  rows += eval_speed.bench("mdm", "runlocal", 64, 64 * 40, 3, 1)
  assert [(r["variant"], r["order"], r["num_orders"]) for r in rows] == [
    ("two_stream", "random", 1),
    ("two_stream", "l2r", 1),
    ("mdm", "elbo", 3),
  ]
  for r in rows:
    assert r["windows"] == 40 and r["eval_s"] > 0
    assert abs(r["compile_s"] - (r["first_s"] - r["eval_s"])) < 2e-3
    scored = 40 * 64 * r["num_orders"]  # forward passes: windows x L x K
    assert abs(r["tokens_per_s"] * r["eval_s"] / scored - 1) < 0.03
    assert math.isclose(r["vs_train"], r["tokens_per_s"] / r["train_tokens_per_s"], rel_tol=0.02)


def test_the_init_benchmark_times_both_paths_and_compares_their_states():
  """Issue 32: `train.init_on` device and host, first and second call; on a CPU the two states
  are the same bit for bit (a GPU's may differ in the last bits: the row says how far)."""
  import init_time

  row = init_time.bench("two_stream", "runlocal", ema_decay=0.5)
  assert row["leaves"] > 0 and row["elements"] > 100_000
  assert row["leaves_differing"] == 0 and row["max_abs_diff"] == 0.0 and row["largest_value"] > 0
  assert row["kernel_elements_differing"] == 0 and row["kernel_max_abs_diff"] == 0.0
  for k in (f"{p}_{n}_s" for p in init_time.PATHS for n in ("first", "second")):
    assert row[k] > 0
  assert row["host_second_s"] < row["host_first_s"]  # the host program compiles once
