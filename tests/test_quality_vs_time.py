"""benchmarks/quality_vs_time.py (issue #20): its smoke ladder trains, scores and writes its
tables and plot; a second run trains nothing. Figures are printed by the benchmark, never
judged here (only their form: a positive time, a diversity in range, SIFID a number or empty)."""
import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "quality_vs_time.py"
COLUMNS = {"image", "method", "max_size", "min_size", "niter", "stages", "seed",
           "train_seconds", "train_size", "score_size", "num_samples", "sifid", "sifid_std",
           "diversity"}


def run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    out = run("--ladder", "smoke", "--dry-run", "--root", tmp_path / "root",
              "--out", tmp_path / "out")
    assert "singan_32_10_min16" in out and "consingan_48_10_3_min16" in out
    assert "estimated time" in out and "dry run: nothing trained" in out
    assert "CPU:" in out                                   # the machine's features
    assert not (tmp_path / "root").exists() and not (tmp_path / "out").exists()


def test_default_ladder_plan():
    out = run("--dry-run")
    for name in ("singan_64_500", "singan_192_250", "consingan_64_1000_5"):
        assert name in out
    assert "rocket.png" in out and "chelsea.png" in out
    # the largest point's size: rocket's 267 x 400 with its longer side 192 px (128.16 -> 129)
    assert "rocket.png (267 x 400): every point scored at 129 x 192" in out


@pytest.mark.slow
def test_smoke_ladder_trains_scores_and_resumes(tmp_path):
    root, out_dir = tmp_path / "root", tmp_path / "out"
    args = ("--ladder", "smoke", "--root", root, "--out", out_dir, "--threads", "1")
    first = run(*args)
    rows = read_csv(out_dir / "quality_vs_time.csv")
    assert COLUMNS <= set(rows[0])
    points = {("singan", "32", "10", ""), ("consingan", "48", "10", "3")}
    got = [(r["method"], r["max_size"], r["niter"], r["stages"], r["seed"]) for r in rows]
    assert sorted(got) == sorted(p + (s,) for p in points for s in ("0", "1"))
    sifid_measured = "SIFID not measured" not in first
    for r in rows:
        assert float(r["train_seconds"]) > 0
        assert 0 < float(r["diversity"]) < 5
        assert r["score_size"] == "33x48" and r["num_samples"] == "4"   # one common size
        if sifid_measured:
            assert float(r["sifid"]) > 0
        else:
            assert r["sifid"] == ""
    assert {r["train_size"] for r in rows} == {"22x32", "33x48"}
    summary = read_csv(out_dir / "quality_vs_time_summary.csv")
    assert len(summary) == 2 and {s["seeds"] for s in summary} == {"2"}
    assert all(float(s["train_seconds_mean"]) > 0 for s in summary)
    png = (out_dir / "quality_vs_time.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image
    with Image.open(out_dir / "quality_vs_time.png") as image:
        image.verify()

    models = sorted(root.glob("rocket/*/model.pth"))
    assert len(models) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in models}
    second = run(*args)
    skipped = [line for line in second.splitlines() if line.startswith("skip ")]
    assert len(skipped) == 4, second
    assert "done rocket" not in second and "trained or scored in" not in second
    assert {p: p.stat().st_mtime_ns for p in models} == mtimes
    assert read_csv(out_dir / "quality_vs_time.csv") == rows
    table = (out_dir / "quality_vs_time.md").read_text().splitlines()
    assert table[0].startswith("| image | method | --max_size | --niter | stages | seeds |")
    assert sum(line.startswith("| rocket | singan | 32 | 10 | - | 2 |") for line in table) == 1
    assert sum(line.startswith("| rocket | consingan | 48 | 10 | 3 | 2 |") for line in table) == 1

    # a result file without its row (a run killed while scoring): scored again, not retrained
    result = root / "rocket" / "singan_32_10_min16_seed1.json"
    record = json.loads(result.read_text())
    del record["row"]
    result.write_text(json.dumps(record))
    third = run(*args)
    assert [line for line in third.splitlines() if line.startswith("done ")] == [
        line for line in first.splitlines() if line.startswith("done rocket singan_32_10_min16 "
                                                               "seed 1")]
    assert sum(line.startswith("skip ") for line in third.splitlines()) == 3
    assert "score rocket singan_32_10_min16 seed 1: already trained" in third
    assert {p: p.stat().st_mtime_ns for p in models} == mtimes
    assert read_csv(out_dir / "quality_vs_time.csv") == rows
    table = (out_dir / "quality_vs_time.md").read_text().splitlines()
    assert table[0].startswith("| image | method | --max_size | --niter | stages | seeds |")
    assert sum(line.startswith("| rocket | singan | 32 | 10 | - | 2 |") for line in table) == 1
    assert sum(line.startswith("| rocket | consingan | 48 | 10 | 3 | 2 |") for line in table) == 1


def test_points_runs_part_of_the_ladder_now(tmp_path):
    """--points picks the points to train now; the others are planned as 'not now', and the
    common score size stays the whole ladder's."""
    out = run("--dry-run", "--points", "consingan_64_1000_5", "--root", tmp_path / "root",
              "--out", tmp_path / "out")
    assert "scored at 129 x 192" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("consingan_64_1000_5"))
    assert line.endswith("to run, to run")
    line = next(l for l in out.splitlines() if l.strip().startswith("singan_192_250"))
    assert line.endswith("not now, not now")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    bad = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--points", "nope_1"],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--points: nope_1 not in the default ladder" in bad.stderr


def test_report_writes_what_is_finished_and_trains_nothing(tmp_path):
    """--report on a ladder with nothing finished trains nothing and writes no table."""
    out = run("--ladder", "smoke", "--report", "--root", tmp_path / "root",
              "--out", tmp_path / "out")
    assert "done " not in out and not (tmp_path / "out").exists()
    assert not list((tmp_path / "root").glob("*/*/model.pth"))


def test_rows_of_the_earlier_table_are_kept(tmp_path):
    """Rows measured earlier (their model folders gone: they are not in git) are kept from the
    table this run rewrites, where they were scored as now; rows written before the table had
    its amp and cpu columns are fp32 rows of the 2-core AVX2 machine. The bf16 points are
    trained on rocket only (issue #39)."""
    out = tmp_path / "out"
    out.mkdir()
    old = ("image,method,max_size,min_size,niter,stages,seed,levels,train_seconds,train_size,"
           "score_size,num_samples,sifid,sifid_std,diversity,sifid_measured,device,threads,"
           "notes,folder\n"
           "rocket.png,singan,64,25,500,,0,4,398.3,43x64,129x192,50,4.52,0.31,0.244,True,cpu,2,,"
           "x\n"
           "rocket.png,singan,64,25,500,,1,4,438.4,43x64,96x128,50,4.56,0.34,0.219,True,cpu,2,,"
           "y\n")
    (out / "quality_vs_time.csv").write_text(old)
    plan = run("--dry-run", "--root", tmp_path / "root", "--out", out)
    line = next(l for l in plan.splitlines() if l.strip().startswith("singan_64_500 "))
    # seed 0 kept; seed 1 was scored at another size: trained again
    assert line.endswith("done earlier, to run") and line.count("singan_64_500") == 1
    assert "1 row(s) of" in plan and "kept from an earlier run" in plan
    rocket, chelsea = plan.split("chelsea.png (")
    assert "singan_250_150_bf16" in rocket and "bf16" not in chelsea
    report = run("--report", "--root", tmp_path / "root", "--out", out)
    assert "skip rocket singan_64_500 seed 0: measured earlier (AVX2, 2 cores)" in report
    rows = read_csv(out / "quality_vs_time.csv")
    assert [(r["seed"], r["amp"], r["cpu"], r["train_seconds"]) for r in rows] == [
        ("0", "none", "AVX2, 2 cores", "398.3")]
    table = (out / "quality_vs_time.md").read_text()
    assert "| rocket | singan | 64 | 500 | - | 1 | 6.6 | 4.52 | 0.244 | none | AVX2, 2 cores |" \
        in table
