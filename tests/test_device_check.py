"""benchmarks/device_check.py's runner on a machine without CUDA: steps as tiny Python
commands, so that the one GPU run a session gets is not lost to the runner itself."""
import importlib.util
import json
import sys
import time
import zipfile

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check",
                                                  ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module
    spec.loader.exec_module(module)
    return module


def write_rows(work, rows):
    (work / "cuda_graphs.json").write_text(json.dumps(rows))


def row(**kw):
    return dict({"amp": "none", "equal": True, "eager_s": 0.02, "graph_s": 0.005}, **kw)


def test_graphs_are_proven_only_when_equal_and_faster_at_every_scale(dc, tmp_path):
    assert "did not finish" in dc.graphs_proven(tmp_path)
    write_rows(tmp_path, [row(), row(amp="bf16", equal=False)])   # bf16 does not decide
    assert dc.graphs_proven(tmp_path) is None
    write_rows(tmp_path, [row(), row(equal=False)])
    assert "not equal" in dc.graphs_proven(tmp_path)
    write_rows(tmp_path, [row(), {"amp": "none", "error": "RuntimeError: capture"}])
    assert "failed" in dc.graphs_proven(tmp_path)
    write_rows(tmp_path, [row(graph_s=0.03)])
    assert "not faster" in dc.graphs_proven(tmp_path)


def test_the_runner_decides_at_each_turn_and_packs_what_comes_back(dc, tmp_path, monkeypatch):
    monkeypatch.setattr(dc, "MODELS", tmp_path / "models")
    (tmp_path / "models" / "a").mkdir(parents=True)
    (tmp_path / "models" / "a" / "model.pth").write_bytes(b"weights")
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir(), work.mkdir()
    (work / "samples" / "r").mkdir(parents=True)
    (work / "samples" / "r" / "gen_start_scale=0_grid.png").write_bytes(b"png")
    first = dc.Step("first", ["-c", "import sys; print('args', sys.argv[1:])"],
                    extra_args=lambda: ["--decided", "late"])
    training = dc.Step("train", ["-c", "print('scale 0/1: 1 x 1, 32 channels, 0.5 s')"],
                       may_stop_at_budget=True)
    skipped = dc.Step("never", ["-c", "raise SystemExit(3)"], condition=lambda: "not wanted")
    failing = dc.Step("fails", ["-c", "raise SystemExit(3)"])
    steps = [first, training, skipped, failing]
    meta = {"started": "now", "dry_run": False, "budget_s": 120, "machine": dc.describe_machine(),
            "_t0": time.perf_counter()}
    dc.run_all(steps, out, work, 120, meta)

    assert [s.result["status"] for s in steps] == ["passed", "passed", "skipped", "failed"]
    assert "['--decided', 'late']" in first.result["tail"]
    assert training.result["note"] == "finished scales 0..0 of 0..1 (seconds per scale 0: 0.5 s)"
    assert skipped.result["note"] == "not wanted"
    report = json.loads((out / "device_check.json").read_text())
    assert report["result"] == "failed" and len(report["steps"]) == 4
    # what comes back: few files, the logs inside one zip
    assert sorted(p.name for p in out.iterdir()) == ["device_check.json", "device_check.txt",
                                                      "device_check.zip", "model.pth",
                                                      "samples_grid.png"]
    with zipfile.ZipFile(out / "device_check.zip") as archive:
        names = archive.namelist()
    assert "logs/01_first.log" in names and "logs/04_fails.log" in names
    assert "samples/r/gen_start_scale=0_grid.png" in names


def test_only_runs_the_steps_it_names(dc, tmp_path):
    steps = [dc.Step(name, ["-c", "pass"]) for name in ("bench_sample fp32", "memory 512 px",
                                                         "train rocket")]
    meta = {"started": "now", "dry_run": False, "budget_s": 60, "machine": dc.describe_machine(),
            "_t0": time.perf_counter()}
    dc.run_all(steps, tmp_path / "out", tmp_path / "work", 60, meta, ["bench_sample*", "mem*"])
    assert [s.result["status"] for s in steps] == ["passed", "passed", "skipped"]
    assert steps[2].result["note"] == "not among --only"
