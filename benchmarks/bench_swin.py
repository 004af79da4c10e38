"""Swin-T inference speed, zoo vs timm vs transformers: the Swin rows of the speed board (`speed_board.py`).

Kept as a shortcut; every option of `speed_board.py` works here and overrides these defaults:

    .venv/bin/python benchmarks/bench_swin.py                 # Swin-T, inference batch 1 and 8, fp32 + bf16, memory
    .venv/bin/python benchmarks/bench_swin.py --rows train_b8 --threads 1 --clock cpu
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed_board  # noqa: E402

DEFAULTS = ["--archs", "swin", "--rows", "infer_b1,infer_b8", "--memory",
            "--output", str(speed_board.RESULTS / "speed_board_swin.csv")]

if __name__ == "__main__":
    speed_board.main(DEFAULTS + sys.argv[1:])
