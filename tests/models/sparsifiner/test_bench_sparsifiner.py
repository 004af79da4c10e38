"""benchmarks/bench_sparsifiner.py in its quick mode: the workers run (their path-agreement checks included) and the
CSV has the attention-core, predictor, layer and model rows with timings, FLOPs and speedups."""

import csv
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_sparsifiner.py"


@pytest.fixture(scope="module")
def bench():
    return SimpleNamespace(**runpy.run_path(str(BENCH), run_name="bench_sparsifiner"))


def test_quick_benchmark_runs_and_reports(bench, tmp_path):
    output = tmp_path / "quick.csv"
    assert bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--output", str(output)]) == 0
    lines = output.read_text().splitlines()
    assert lines[0].startswith("# torch threads 1, cpu clock")
    rows = list(csv.DictReader(lines[1:]))
    assert [(r["scope"], r["variant"]) for r in rows] == [
        ("attention_core", "dense"), ("attention_core", "sparse"), ("attention_core", "gather"),
        ("predictor", "sparse"), ("attention_layer", "dense"), ("attention_layer", "sparse"),
        ("attention_layer", "masked"), ("deit_s_model", "dense"), ("deit_s_model", "sparse")]
    assert all(float(r["median_ms"]) > 0 and float(r["gflops_per_image"]) > 0 for r in rows)
    assert all(r["threads"] == "1" and r["clock"] == "cpu" for r in rows)
    core = {r["variant"]: r for r in rows if r["scope"] == "attention_core"}
    assert core["sparse"]["gflops_per_image"] == core["gather"]["gflops_per_image"]
    assert float(core["sparse"]["gflops_per_image"]) < float(core["dense"]["gflops_per_image"])
    assert float(core["sparse"]["speedup_vs_dense"]) == pytest.approx(
        float(core["dense"]["median_ms"]) / float(core["sparse"]["median_ms"]), rel=1e-2)
    assert rows[3]["speedup_vs_dense"] == ""


def test_bad_options_fail_clearly(bench):
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--clock", "sundial"])
