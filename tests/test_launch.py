"""Sweep expansion, naming, skip-finished, the SLURM script, and the report's table and plots."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from aoarm.config import config_lib, key_table
from aoarm.tools import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "launch"))
import sweep  # noqa: E402


def test_length_sweep_expands_to_the_experiment():
  entries = sweep.load_sweep(os.path.join(REPO, "configs", "length_sweep.py"))
  names = [sweep.run_name(e) for e in entries]
  assert len(names) == len(set(names)) == 36
  assert "decoupled_rope_seq_len1024_seed0_target_heads0.5" in names
  recipes = [e for e in entries if e.get("order.train") == "mixture" and e["seq_len"] == 128]
  (recipe,) = [e for e in recipes if "compute_of" not in e and "model.ada_gate_init" not in e]
  (opened,) = [e for e in recipes if e.get("model.ada_gate_init") == 1.0 and "compute_of" not in e]
  cmd = sweep.command("configs/length_sweep.py", opened, "/w", "train", [])
  assert any(c.endswith("ada_cond_std=1.0") for c in cmd), cmd
  # aogpt's equal-compute arms: the recipe, with AO-GPT's init and with open gates
  equal_compute = [e for e in recipes if e.get("compute_of") == "two_stream"]
  assert [e["model.own_positions"] for e in equal_compute] == ["learned", "learned"]
  assert sorted(e.get("model.ada_gate_init", 0.0) for e in equal_compute) == [0.0, 1.0]
  cmd = sweep.command("configs/length_sweep.py", recipe, "/w", "train", [])
  for flag in ("own_positions=learned", "order.train=mixture", "order.l2r_prob=0.1"):
    assert any(c.endswith(flag) for c in cmd), (flag, cmd)
  (order_dims,) = [e for e in entries if e.get("model.rope.order_dims") and e["seq_len"] == 1024]
  cmd = sweep.command("configs/length_sweep.py", order_dims, "/w", "train", ["--x"])
  assert "--config=configs/length_sweep.py:variant=decoupled_rope,seq_len=1024,seed=0" in cmd
  assert "--config.model.rope.order_dims=0.5" in cmd and cmd[-1] == "--x"
  cmd = sweep.command("configs/length_sweep.py", entries[-1], "/w", "train", [])
  assert (
    "--config=configs/length_sweep.py:variant=aogpt,seq_len=1024,seed=0,compute_of=two_stream"
    in cmd
  )


def test_the_equal_compute_arm_trains_for_two_streams_flops():
  """compute_of=two_stream: decoupled_rope trains on more tokens, as many FLOPs as two_stream."""
  import importlib.util

  from aoarm.models import ModelConfig
  from aoarm.run import flops

  path = os.path.join(REPO, "configs", "length_sweep.py")
  spec = importlib.util.spec_from_file_location("length_sweep", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  for L in (128, 1024):
    base = mod.get_config(f"variant=decoupled_rope,seq_len={L}")
    more = mod.get_config(f"variant=decoupled_rope,seq_len={L},compute_of=two_stream")
    ts = mod.get_config(f"variant=two_stream,seq_len={L}")

    def total(c, L=L):
      m = ModelConfig.from_config(dict(c.model, vocab_size=27), L)
      return flops.train_flops_per_token(m) * c.train.num_steps * c.train.batch_size * L

    assert (
      more.train.batch_size == base.train.batch_size and more.train.num_steps > base.train.num_steps
    )
    assert total(more) == pytest.approx(total(ts), rel=1e-3)


def test_every_config_builds_and_sweeps():
  import importlib.util

  for name in ("ar", "two_stream", "decoupled_rope", "sigma_gpt", "aogpt", "mdm", "length_sweep"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for arg in (None, "runlocal", "seq_len=256,seed=1"):
      c = mod.get_config(arg)
      assert {"model", "data", "opt", "train", "ckpt", "eval", "mesh"} <= set(c.keys())
    assert mod.sweep()
  with pytest.raises(ValueError, match="unknown config arg"):
    mod.get_config("seqlen=5")


def test_finished_detection_and_slurm_script(tmp_path):
  wd = tmp_path / "run"
  (wd / "eval").mkdir(parents=True)
  (wd / "config.json").write_text(json.dumps({"train": {"num_steps": 7}}))
  assert not sweep.finished(str(wd), 7)
  (wd / "eval" / "step_7.json").write_text("{}")
  assert sweep.finished(str(wd), 7)
  # issue 37 (12): a rerun asking for more steps is not finished (it resumes and trains on)
  assert not sweep.finished(str(wd), 14)
  # stopped early (train.patience) at its newest checkpoint, 10, and evaluated at its best, 6
  (wd / "ckpt" / "10").mkdir(parents=True)
  (wd / "early_stop.json").write_text(json.dumps({"step": 10, "patience": 3, "best_step": 6}))
  assert not sweep.finished(str(wd), 14, patience=3)  # no eval of step 10 or 6 yet
  (wd / "eval" / "step_6-best.json").write_text("{}")
  assert sweep.finished(str(wd), 14, patience=3)
  assert not sweep.finished(str(wd), 14, patience=0)  # another patience: it trains on
  (wd / "ckpt" / "12").mkdir()  # trained on past the stop since: not finished
  assert not sweep.finished(str(wd), 14, patience=3)
  cfg = "configs/length_sweep.py:runlocal"
  entry = {"variant": "two_stream", "seq_len": 128, "seed": 0}
  steps, patience = ["train.num_steps"], ["train.patience"]
  assert sweep.planned_values(cfg, entry, [], steps) == [50]
  assert sweep.planned_values(cfg, entry, ["--config.train.num_steps=80"], steps) == [80]
  assert sweep.planned_values("configs/subword.py", entry, [], patience) == [5]
  subword_off = ["--config.train.patience=0"]
  assert sweep.planned_values("configs/subword.py", entry, subword_off, patience) == [0]
  assert sweep.planned_values(cfg, {**entry, "compute_of": "two_stream"}, [], steps) == [50]
  res = subprocess.run(
    [
      sys.executable,
      "launch/sweep.py",
      "--config=configs/length_sweep.py",
      f"--sweep_dir={tmp_path / 'sw'}",
      "--runner=slurm",
      "--only=^two_stream_seq_len[0-9]+_seed0$",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert res.returncode == 0, res.stderr
  script = (tmp_path / "sw" / "sweep.sbatch").read_text()
  assert "#SBATCH --array=0-3" in script and "srun" in script and "AOARM_DISTRIBUTED=1" in script


def _report_cli(*args):
  """`python -m aoarm.tools.report ARGS` in a subprocess (its exit code and one-line errors)."""
  return subprocess.run(
    [sys.executable, "-m", "aoarm.tools.report", *args], capture_output=True, text=True
  )


def _fake_run(root, name, variant, L, bits, seed=0, target_heads=1.0, **over):
  d = root / name
  (d / "eval").mkdir(parents=True)
  cfg = {
    "model": {"variant": variant, "rope": {"target_heads": target_heads, "order_dims": 0.0}},
    "data": {"seq_len": L, "source": "pydoc"},
    "opt": {"lr": 0.001},
    "seed": seed,
    "train": {"batch_size": 4, "num_steps": 10, "log_every": 5},
    "mesh": {"data": -1},
  }
  for k, v in over.items():
    section, key = k.split(".")
    cfg[section][key] = v
  (d / "config.json").write_text(json.dumps(cfg))
  nats = bits * 0.6931471805599453
  ev = {
    "step": 10,
    "nll_per_token": nats,
    "bits_per_token": bits,
    "stderr": 0.01,
    "by_order": {
      "random": {"bits_per_token": bits, "stderr": 0.01},
      "l2r": {"bits_per_token": bits + 0.1, "stderr": 0.01},
    },
  }
  (d / "eval" / "step_10.json").write_text(json.dumps(ev))


def test_report_table_and_plot(tmp_path):
  _fake_run(tmp_path, "a", "two_stream", 128, 2.0, seed=0)
  _fake_run(tmp_path, "b", "two_stream", 128, 2.2, seed=1)
  _fake_run(tmp_path, "c", "decoupled_rope", 1024, 2.5, target_heads=0.5)
  _fake_run(tmp_path, "d", "mdm", 128, 2.4)
  ev_path = tmp_path / "d" / "eval" / "step_10.json"
  ev = json.loads(ev_path.read_text())
  ev["by_order"] = {"elbo": ev["by_order"]["random"]}
  ev_path.write_text(json.dumps(ev))
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  t = 12.706204736 * 0.1  # t(0.975, 1 df) x the standard error of two seeds
  assert f"| two_stream | 2.1000 ± {t:.4f} (n=2, 95% t) |" in md
  assert "decoupled_rope (target_heads=0.5)" in md
  assert "| mdm | 2.4000 ± 0.0144 (1 seed: window SE) |" in md  # the ELBO sits with random
  assert (tmp_path / "bits_vs_len.png").stat().st_size > 1000


def test_report_plots_the_validation_curves_of_runs_that_have_them(tmp_path):
  _fake_run(tmp_path, "a", "two_stream", 256, 2.0, seed=0)
  _fake_run(tmp_path, "b", "two_stream", 256, 2.1, seed=1)
  _fake_run(tmp_path, "c", "decoupled_rope", 256, 2.2)
  rows = [{"step": 10, "train/loss": 9.0}]  # a train log line is no point of the curve
  rows += [{"step": s, "eval/valid_nll": v} for s, v in ((2, 3.0), (4, 2.5), (4, 2.4), (6, 2.6))]
  (tmp_path / "a" / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)))
  (tmp_path / "c" / "metrics.jsonl").write_text(json.dumps({"step": 10, "eval/valid_nll": 2.0}))
  from aoarm.tools import report_plots

  curves = report_plots.validation_curves(str(tmp_path), report.gather(str(tmp_path)))
  assert curves == {("two_stream", 256): {"a": [(2, 3.0), (4, 2.4), (6, 2.6)]}}  # c: one point
  report.main([str(tmp_path)])
  assert "valid_curves.png" in (tmp_path / "report.md").read_text()
  assert (tmp_path / "valid_curves.png").stat().st_size > 1000


def test_report_never_averages_different_experiments(tmp_path):
  """Runs of one variant on other data or with another learning rate are other rows; settings
  that do not change the experiment (logging, the mesh) do not split a row; seeds are counted
  from the seeds."""
  from aoarm.tools import report

  _fake_run(tmp_path, "pydoc", "two_stream", 128, 2.0)
  _fake_run(tmp_path, "markov", "two_stream", 128, 1.5, **{"data.source": "markov"})
  _fake_run(tmp_path, "lr", "two_stream", 128, 3.0, **{"opt.lr": 0.003})
  _fake_run(tmp_path, "pydoc_s1", "two_stream", 128, 2.2, seed=1, **{"train.log_every": 1})
  _fake_run(tmp_path, "pydoc_again", "two_stream", 128, 2.4, seed=1, **{"mesh.data": 2})
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  one = "0.0144 (1 seed: window SE)"
  # the experiment with the most runs keeps the plain label; the others name how they differ
  assert f"| two_stream (data.source=markov) | 1.5000 ± {one} |" in md
  assert f"| two_stream (opt.lr=0.003) | 3.0000 ± {one} |" in md
  t = 4.30265273 * 0.2 / 3**0.5  # t(0.975, 2 df) x the standard error of three runs
  want = f"| two_stream | 2.2000 ± {t:.4f} (3 runs, 2 seeds"
  assert want in md


def test_report_keeps_a_setting_that_follows_L_in_one_row(tmp_path):
  """The length sweep's batch is tokens per step / L: a setting with one value per L does not
  split a variant's row (it did, after grouping by the whole config), while one that differs at
  the same L still does."""
  from aoarm.tools import report

  for L in (128, 1024):
    _fake_run(tmp_path, f"ts{L}", "two_stream", L, 2.0, **{"train.batch_size": 65536 // L})
    _fake_run(tmp_path, f"dr{L}", "decoupled_rope", L, 2.3, **{"train.batch_size": 65536 // L})
  _fake_run(
    tmp_path, "dr_lr", "decoupled_rope", 128, 2.6, **{"train.batch_size": 512, "opt.lr": 0.003}
  )
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  one = "0.0144 (1 seed: window SE)"
  assert f"| two_stream | 2.0000 ± {one} | 2.0000 ± {one} |" in md
  assert f"| decoupled_rope | 2.3000 ± {one} | 2.3000 ± {one} |" in md
  assert f"| decoupled_rope (opt.lr=0.003) | 2.6000 ± {one} |  |" in md


def test_named_sizes_for_the_pod_presets():
  """`size=` gives the peers' shapes (issue 20): 124M, 350M and 1.3B at V = 50304."""
  from aoarm.config import config_lib
  from aoarm.models import ModelConfig
  from aoarm.run import flops

  want = {"124m": 123_685_632, "350m": 353_682_432, "1.3b": 1_311_344_640}
  for size, params in want.items():
    c = config_lib.base_config("ar", f"size={size},seq_len=1024")
    m = ModelConfig.from_config(dict(c.model, vocab_size=50304), 1024)
    assert flops.count(m)["total"] == params
  with pytest.raises(ValueError, match="size='2b'"):
    config_lib.base_config("ar", "size=2b")


def test_report_labels_the_model_options():
  """A run with a beyond-the-paper option gets its own row, named by the option."""
  assert report.label({"variant": "two_stream", "query_layers": 2}) == "two_stream (query_layers=2)"
  assert report.label({"variant": "two_stream", "query_layers": 0}) == "two_stream"
  assert report.label({"variant": "aogpt"}) == "aogpt"
  mixture = {"train": "mixture", "l2r_prob": 0.1}
  want = "aogpt (train order: mixture, l2r_prob=0.1)"
  assert report.label({"variant": "aogpt"}, mixture) == want
  assert report.label({"variant": "aogpt"}, {"train": "random"}) == "aogpt"
  assert report.label({"variant": "ar"}, {"train": "l2r"}) == "ar"
  assert report.label({"variant": "ar"}, {"train": "random"}) == "ar (train order: random)"
  assert report.label({"variant": "mdm"}, {"train": "random"}) == "mdm"  # it has no order


def test_report_of_a_subset_of_runs(tmp_path):
  """`--only REGEX` reports the runs whose folder names match, into files named by `--tag`, and
  leaves the whole sweep's report alone; bad values end in one line, exit 2."""
  _fake_run(tmp_path, "two_stream_L128", "two_stream", 128, 2.0)
  _fake_run(tmp_path, "aogpt_L128", "aogpt", 128, 4.0)
  report.main([str(tmp_path)])
  whole = (tmp_path / "report.md").read_text()
  report.main([str(tmp_path), "--only=^two_stream", "--tag=paper"])
  md = (tmp_path / "report_paper.md").read_text()
  assert "| two_stream | 2.0000 ± 0.0144 (1 seed: window SE) |" in md and "aogpt" not in md
  assert "matching `^two_stream`" in md
  assert (tmp_path / "bits_vs_len_paper.png").stat().st_size > 1000
  assert (tmp_path / "report.md").read_text() == whole and "aogpt" in whole
  for bad, msg in (
    (["--only=(", "--tag=x"], "--only='(' is not a regular expression"),
    (["--only=^nothing"], "in runs matching --only='^nothing'"),
    (["--tag=a/b"], "--tag='a/b'"),
  ):
    res = _report_cli(str(tmp_path), *bad)
    assert res.returncode == 2 and msg in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_report_gaps_to_a_reference_row(tmp_path):
  """--gap_to/--gap_of: each row's gap to the reference, ± both errors combined, and the share
  of the baseline's gap it closes (or by how much it widens it); unknown labels exit 2."""
  _fake_run(tmp_path, "ts", "two_stream", 128, 2.0)
  _fake_run(tmp_path, "dr", "decoupled_rope", 128, 2.1)
  _fake_run(tmp_path, "near", "aogpt", 128, 2.025)
  _fake_run(tmp_path, "far", "sigma_gpt", 128, 2.3)
  report.main([str(tmp_path), "--gap_to=two_stream", "--gap_of=decoupled_rope"])
  md = (tmp_path / "report.md").read_text()
  se = f"{math.hypot(0.01, 0.01) / math.log(2):.3f} (1 seed: unpaired)"
  assert f"| aogpt | +0.025 ± {se} (closes 75%) |" in md
  assert f"| sigma_gpt | +0.300 ± {se} (widens 3.0x) |" in md
  assert f"| decoupled_rope | +0.100 ± {se} |" in md
  assert "| two_stream | +" not in md
  res = _report_cli(str(tmp_path), "--gap_to=mdm")
  assert res.returncode == 2 and "--gap_to='mdm' is no row" in res.stderr, res.stderr


def test_report_pairs_the_gap_by_seed_and_takes_runs_from_other_folders(tmp_path):
  """With the same seeds on both sides the gap is the mean of the per-seed gaps ± their spread
  (here the seeds move both variants together, so the paired error is small); `--also` adds runs
  kept elsewhere (a workdir or a folder of them); a missing one exits 2."""
  sweep, more = tmp_path / "sweep", tmp_path / "more"
  _fake_run(sweep, "ts0", "two_stream", 1024, 2.0, seed=0)
  _fake_run(sweep, "dr0", "decoupled_rope", 1024, 2.1, seed=0)
  _fake_run(more, "ts1", "two_stream", 1024, 2.3, seed=1)
  _fake_run(more, "dr1", "decoupled_rope", 1024, 2.42, seed=1)
  _fake_run(tmp_path, "mdm0", "mdm", 1024, 2.5, seed=0)
  _fake_run(sweep, "sg0", "sigma_gpt", 1024, 2.2, seed=0)  # shares seeds 0 and 1 with two_stream
  _fake_run(sweep, "sg1", "sigma_gpt", 1024, 2.4, seed=1)
  _fake_run(sweep, "sg2", "sigma_gpt", 1024, 9.0, seed=2)
  report.main([str(sweep), f"--also={more},{tmp_path / 'mdm0'}", "--gap_to=two_stream"])
  md = (sweep / "report.md").read_text()
  t1 = 12.706204736  # t(0.975, 1 df)
  assert f"| two_stream | 2.1500 ± {t1 * 0.15:.4f} (n=2, 95% t) |" in md
  assert f"| decoupled_rope | +0.110 ± {t1 * 0.01:.3f} (seed-paired, n=2, 95% t) |" in md
  unpaired = math.hypot(t1 * 0.15, 0.01 / math.log(2))
  assert f"| mdm | +0.350 ± {unpaired:.3f} (seeds not paired: unpaired) |" in md
  assert f"| sigma_gpt | +0.150 ± {t1 * 0.05:.3f} (seed-paired, n=2 (the 2 seeds both ran), " in md
  assert "Runs: 8 in" in md
  res = _report_cli(str(sweep), f"--also={tmp_path / 'nope'}")
  assert res.returncode == 2 and "--also: " in res.stderr and "nope" in res.stderr, res.stderr


def test_report_statistics_a_reviewer_accepts(tmp_path):
  """Issue 31: within one seed the gap is window-paired from the per-window files; the trend is
  seed-paired across lengths with a t interval; a capped or test-split eval gets its own row; an
  equal-compute arm says so; runs without an eval are listed, not dropped."""
  from scipy import stats

  from aoarm.tools import evidence

  rng = np.random.default_rng(0)
  base = rng.normal(2.0, 0.3, 50)
  for name, bits in (("ts", base), ("dr", base + 0.1 + rng.normal(0, 0.01, 50))):
    _fake_run(tmp_path, name, "two_stream" if name == "ts" else "decoupled_rope", 128, 0.0)
    nats = bits * math.log(2)
    np.savez(tmp_path / name / "eval" / "step_10.npz", nll_random=nats, nll_l2r=nats)
  rows = {n: report.gather(str(tmp_path), f"^{n}$") for n in ("dr", "ts")}
  gap = evidence.gap(rows["dr"][:1], rows["ts"][:1])  # the random order's rows
  x, y = (evidence.per_window_bits(rows[n][0]) for n in ("dr", "ts"))
  d = x - y
  assert gap.how == "1 seed: window-paired SE, 50 windows"
  assert math.isclose(gap.mean, d.mean()) and math.isclose(gap.half, d.std(ddof=1) / 50**0.5)
  # the trend over lengths, paired by seed
  t_rows = []
  for seed, g128, g1024 in ((0, 0.05, 0.10), (1, 0.07, 0.16), (2, 0.03, 0.11)):
    for L, g in ((128, g128), (1024, g1024)):
      t_rows += [
        {"seed": seed, "bits": 2.0, "stderr_bits": 0.01, "L": L, "arm": "ts"},
        {"seed": seed, "bits": 2.0 + g, "stderr_bits": 0.01, "L": L, "arm": "dr"},
      ]

  def cell(arm, L):
    return [r for r in t_rows if r["arm"] == arm and r["L"] == L]

  t = evidence.trend(cell("dr", 128), cell("ts", 128), cell("dr", 1024), cell("ts", 1024))
  diffs = np.array([0.05, 0.09, 0.08])
  assert math.isclose(t.mean, diffs.mean())
  want = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / 3**0.5
  assert math.isclose(t.half, want) and t.n == 3
  # a seed that one cell alone ran is left out, and said so
  more = cell("dr", 1024) + [{"seed": 7, "bits": 9.0, "stderr_bits": 0.01, "L": 1024, "arm": "dr"}]
  t7 = evidence.trend(cell("dr", 128), cell("ts", 128), more, cell("ts", 1024))
  assert math.isclose(t7.mean, t.mean) and "(the 3 seeds all ran)" in t7.how
  # scopes, equal compute, runs without an eval
  _fake_run(tmp_path, "eq", "decoupled_rope", 128, 2.05, **{"train.compute_of": "two_stream"})
  _fake_run(tmp_path, "capped", "two_stream", 128, 1.9)
  ev_path = tmp_path / "capped" / "eval" / "step_10.json"
  ev = json.loads(ev_path.read_text())
  ev.update(capped=True, max_windows=64, windows_in_split=358, split="test")
  ev_path.write_text(json.dumps(ev))
  (tmp_path / "noeval").mkdir()
  (tmp_path / "noeval" / "config.json").write_text((tmp_path / "ts" / "config.json").read_text())
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  assert "| decoupled_rope (equal compute: two_stream's FLOPs) | 2.0500 ±" in md
  assert "| two_stream [test, first 64 of 358 windows] | 1.9000 ±" in md
  assert "`noeval` (no eval)" in md


def test_report_rows_for_every_kind_of_eval_and_gaps_within_each(tmp_path):
  """A run with its default eval and a test-split eval at its best checkpoint (issue 33's
  runs) gives a row of each scope; --gap_to names the arm, and each row is compared with the
  reference's row of the same scope only. An older eval of one kind gives way to the newer."""
  for name, variant, bits in (("ts", "two_stream", 2.0), ("dr", "decoupled_rope", 2.1)):
    _fake_run(tmp_path, name, variant, 256, bits)
    ev = json.loads((tmp_path / name / "eval" / "step_10.json").read_text())
    test = dict(ev, step=8, split="test", checkpoint="best")
    more = 0.5 if name == "dr" else 0.2
    test["by_order"] = {
      k: dict(v, bits_per_token=v["bits_per_token"] + more) for k, v in ev["by_order"].items()
    }
    (tmp_path / name / "eval" / "step_8-test-best.json").write_text(json.dumps(test))
    old = dict(
      test, step=4, by_order={k: dict(v, bits_per_token=9.0) for k, v in ev["by_order"].items()}
    )
    (tmp_path / name / "eval" / "step_4-test-best.json").write_text(json.dumps(old))
  report.main([str(tmp_path), "--gap_to=two_stream"])
  md = (tmp_path / "report.md").read_text()
  assert "| decoupled_rope [test, best in-training eval's checkpoint] | 2.6000" in md
  assert "| decoupled_rope | 2.1000" in md and "9.0000" not in md
  se = f"{math.hypot(0.01, 0.01) / math.log(2):.3f} (1 seed: unpaired)"
  assert f"| decoupled_rope | +0.100 ± {se} |" in md
  assert f"| decoupled_rope [test, best in-training eval's checkpoint] | +0.400 ± {se} |" in md


def test_report_ignores_keys_that_mean_nothing_in_the_run(tmp_path):
  """A character-level run's tokenizer settings change nothing it computes (`key_table.applies`):
  runs saved before and after such a default changed are one row; subword runs that differ in
  them are two."""
  for seed, sample in ((0, 100_000_000), (1, 0)):
    over = {"data.tokenizer": "char", "data.tokenizer_sample_bytes": sample}
    _fake_run(tmp_path, f"char{seed}", "two_stream", 128, 2.0 + 0.2 * seed, seed=seed, **over)
    over = {"data.tokenizer": "bpe", "data.tokenizer_sample_bytes": sample}
    _fake_run(tmp_path, f"bpe{seed}", "two_stream", 256, 3.0, seed=seed, **over)
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  t = 12.706204736 * 0.1  # t(0.975, 1 df) x the standard error of two seeds
  assert f"2.1000 ± {t:.4f} (n=2, 95% t)" in md
  assert md.count("data.tokenizer_sample_bytes=") == 2 * 2  # two rows in each of two tables
  for key, (on, values) in key_table.ONLY_WHERE.items():
    flat = key_table.flat(config_lib.base_config("two_stream", None))
    assert key in flat and on in flat and values, key
    assert key_table.applies(key, {on: values[0]}) and not key_table.applies(key, {on: "none"})


def test_report_groups_a_run_saved_before_a_key_existed_with_its_default(tmp_path):
  """A config.json saved before an option existed lacks its key; the option's default is what
  that run did, so it averages with newer runs at the default and not with runs that set it."""
  _fake_run(tmp_path, "old", "two_stream", 128, 2.0, seed=0)
  _fake_run(tmp_path, "new", "two_stream", 128, 2.2, seed=1, **{"model.bias": False})
  _fake_run(tmp_path, "biased", "two_stream", 128, 2.6, seed=0, **{"model.bias": True})
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  t = 12.706204736 * 0.1
  assert f"| two_stream | 2.1000 ± {t:.4f} (n=2, 95% t) |" in md
  assert "| two_stream (model.bias=True) | 2.6000 ± 0.0144 (1 seed: window SE) |" in md


def test_report_tables_the_attention_diagnostics_over_seeds(tmp_path):
  """Each variant and stream gets the mean over seeds ± 95% t of its structural and semantic
  masses per L (one seed: ± its window standard error), in the report and its plot."""
  for seed, (st, se) in enumerate(((0.20, 0.40), (0.24, 0.44))):
    _fake_run(tmp_path, f"ts{seed}", "two_stream", 512, 2.0, seed=seed)
    diag = {
      "summary": {
        "content": {
          "structural_4": st,
          "structural_4_stderr": 0.001,
          "semantic_4": se,
          "semantic_4_stderr": 0.002,
          "uniform_4": 0.05,
        }
      }
    }
    (tmp_path / f"ts{seed}" / "diagnostics").mkdir()
    (tmp_path / f"ts{seed}" / "diagnostics" / "step_10.json").write_text(json.dumps(diag))
  _fake_run(tmp_path, "dr", "decoupled_rope", 512, 2.1)
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  t = 12.706204736 * 0.02  # t(0.975, 1 df) x the standard error of two seeds 0.04 apart
  assert f"| two_stream [content] | 0.220 ± {t:.3f} (n=2, 95% t) | 0.420 ± {t:.3f} (n=2" in md
  assert "decoupled_rope [" not in md  # no diagnostics: no row
  assert (tmp_path / "attention.png").stat().st_size > 1000


def test_the_gap_over_three_lengths_has_a_slope_and_a_mean_per_seed():
  """Over 3+ lengths the gap's slope against log2 L (bits per doubling) and its mean over L are
  taken per seed, then over seeds with a t interval; a seed missing at one length is left out,
  and fewer than two seeds or lengths give none."""
  from scipy import stats

  from aoarm.tools import evidence

  slopes, offsets = {0: 0.01, 1: 0.02, 2: 0.04}, {0: 0.05, 1: 0.0, 2: 0.1}
  cells = []
  for L in (128, 256, 1024):
    ts = [{"seed": s, "bits": 2.0 + 0.1 * s, "stderr_bits": 0.01} for s in slopes]
    dr = [
      {"seed": s, "bits": 2.0 + 0.1 * s + offsets[s] + slopes[s] * math.log2(L / 128)}
      for s in slopes
    ]
    cells.append((L, dr, ts))
  cells[1][1].append({"seed": 3, "bits": 9.0})  # seed 3 ran one arm at one length only
  t = stats.t.ppf(0.975, 2)
  st = evidence.slope(cells)
  s = np.array(list(slopes.values()))
  assert st.n == 3 and math.isclose(st.mean, s.mean())
  assert "the 3 seeds all ran" in st.how  # seed 3 left out, and said so
  assert math.isclose(st.half, t * s.std(ddof=1) / 3**0.5)
  m = evidence.mean_over_lengths(cells)
  per_seed = np.array([offsets[k] + slopes[k] * np.mean([0, 1, 3]) for k in slopes])
  assert "the 3 seeds all ran" in m.how
  assert math.isclose(m.mean, per_seed.mean()) and math.isclose(
    m.half, t * per_seed.std(ddof=1) / 3**0.5
  )
  assert evidence.slope(cells[:2]) is None  # two lengths: the trend column's job
  one_seed = [(L, dr[:1], ts[:1]) for L, dr, ts in cells]
  assert evidence.slope(one_seed) is None and evidence.mean_over_lengths(one_seed) is None


def test_report_names_every_experiment_of_a_variant_on_a_tie(tmp_path):
  """Where no experiment of a variant has the most runs, none takes the plain label (and a gap
  to the plain label is refused: which arm it means is the user's to say)."""
  _fake_run(tmp_path, "a", "two_stream", 128, 2.0, **{"opt.lr": 0.001})
  _fake_run(tmp_path, "b", "two_stream", 128, 2.2, **{"opt.lr": 0.002})
  report.main([str(tmp_path)])
  md = (tmp_path / "report.md").read_text()
  assert (
    "| two_stream (opt.lr=0.001) | 2.0000" in md and "| two_stream (opt.lr=0.002) | 2.2000" in md
  )
  assert "| two_stream |" not in md
  res = _report_cli(str(tmp_path), "--gap_to=two_stream")
  assert res.returncode == 2 and "--gap_to='two_stream' is no row" in res.stderr, res.stderr


def test_an_equal_compute_arm_is_one_row_across_lengths(tmp_path):
  """Issue 33: the equal-compute arm's steps are its reference's budget times their FLOP ratio,
  which depends on L (5103 steps at L = 256, 5172 at L = 1024), so they must not split its row;
  steps that differ at one L still do."""
  for L, steps in ((256, 5103), (1024, 5172)):
    for seed in (0, 1):
      _fake_run(
        tmp_path,
        f"ts{L}_{seed}",
        "two_stream",
        L,
        2.0 + seed / 100,
        seed=seed,
        **{"train.num_steps": 3000},
      )
      _fake_run(
        tmp_path,
        f"eq{L}_{seed}",
        "decoupled_rope",
        L,
        2.05 + L / 1e4,
        seed=seed,
        **{"train.num_steps": steps, "train.compute_of": "two_stream"},
      )
  report.main([str(tmp_path), "--gap_to=two_stream"])
  md = (tmp_path / "report.md").read_text()
  assert "num_steps" not in md
  row = [x for x in md.splitlines() if x.startswith("| decoupled_rope (equal compute")]
  assert len(row) == 4 and all(x.count("(n=2, 95% t)") == 2 for x in row[:2])  # random, l2r
  # a second budget at one L is another experiment: a row of its own
  _fake_run(
    tmp_path,
    "eq256_long",
    "decoupled_rope",
    256,
    2.0,
    seed=0,
    **{"train.num_steps": 9000, "train.compute_of": "two_stream"},
  )
  report.main([str(tmp_path), "--gap_to=two_stream"])
  assert "train.num_steps=" in (tmp_path / "report.md").read_text()
