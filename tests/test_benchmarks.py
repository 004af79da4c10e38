"""The speed board (benchmarks/speed_board.py) on its quick Swin config: parity checks, timing, CSV and table."""

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

BOARD_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "speed_board.py"


@pytest.fixture(scope="module")
def board():
    spec = importlib.util.spec_from_file_location("speed_board", BOARD_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_board_runs_and_reports(board, tmp_path, capsys):
    output = tmp_path / "board.csv"
    # one configuration in a fresh worker process (the default), one in this process
    board.main(["--quick", "--archs", "swin", "--rows", "infer_b1", "--dtypes", "fp32", "--threads", "1",
                "--repeats", "2", "--warmup", "0", "--output", str(output)])
    first = list(csv.DictReader(open(output)))
    board.main(["--quick", "--archs", "swin", "--rows", "train_b8", "--dtypes", "bf16", "--threads", "1",
                "--repeats", "1", "--warmup", "0", "--same-process", "--output", str(output)])
    rows = first + list(csv.DictReader(open(output)))
    assert [(r["mode"], r["dtype"], r["impl"]) for r in rows] == [
        (mode, dtype, impl) for mode, dtype in (("infer", "fp32"), ("train", "bf16"))
        for impl in ("zoo", "timm", "transformers")]
    for group in (rows[:3], rows[3:]):
        zoo, *peers = group
        times = {r["impl"]: float(r["time_ms"]) for r in group}
        assert all(t > 0 for t in times.values())
        assert float(zoo["ratio"]) == pytest.approx(min(times["timm"], times["transformers"]) / times["zoo"],
                                                    rel=1e-2)
        assert zoo["fastest_peer"] in ("timm", "transformers")
        for peer in peers:
            assert float(peer["parity_max_abs_diff"]) < 1e-4
            assert float(peer["cpu_ms"]) > 0 and int(peer["torch_threads"]) == 1
    assert all(r["train_grad_max_rel_diff"] != "" for r in rows[4:])  # gradient parity ran for the train step
    assert all(r["train_loss_diff"] == "" for r in rows[:3])

    capsys.readouterr()
    board.main(["--markdown", str(output)])
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0] == "| model | step | dtype | zoo ms | timm ms | transformers ms | fastest peer / zoo |"
    assert len(table) == 3 and table[2].startswith("| Swin (quick) | train step, batch 8 | bf16 |")


def test_parity_check_catches_different_weights(board):
    spec = board.ARCHS["swin"]
    size = spec.sizes["quick"]
    models = board.build_models(spec, size, seed=0)
    board.check_output_parity(models, size, spec.parity_atol, seed=0)
    with torch.no_grad():
        models["zoo"].classifier.bias.add_(1e-2)
    with pytest.raises(AssertionError, match="not the same model"):
        board.check_output_parity(models, size, spec.parity_atol, seed=0)
    with torch.no_grad():
        models["zoo"].classifier.bias.sub_(1e-2)
        models["zoo"].swin.stages[0].blocks[0].mlp.fc1.weight.mul_(1.1)
    with pytest.raises(AssertionError, match="gradient|loss"):
        board.check_train_parity(spec, models, size, seed=0)


def test_bad_options_fail_clearly(board):
    with pytest.raises(SystemExit):
        board.main(["--archs", "nope"])
    with pytest.raises(ValueError, match="infer_b<batch>"):
        board.parse_row("infer_8")
