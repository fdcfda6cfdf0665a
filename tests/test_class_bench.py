"""benchmarks/class_bench.py's session mode without a browser: its command line, its seeded
arrivals and its targets (which must miss when a student never got in or a page hung)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

class_bench = pytest.importorskip("class_bench")


def test_the_command_line_gives_the_session_options() -> None:
    argv = "--session-minutes 60 --students 30 --max-kernels 12 --seed 3 --cull-seconds 30"
    args = class_bench.build_parser().parse_args(argv.split())
    opt = class_bench.session_options(args)
    assert (opt.students, opt.session_s, opt.max_kernels, opt.seed) == (30, 3600, 12, 3)
    assert (opt.arrival_s, opt.retry_s, opt.cull_seconds) == (120, (10, 30), 30)
    assert class_bench.build_parser().parse_args([]).session_minutes is None  # the old mode


def test_arrivals_are_a_seeded_burst() -> None:
    opt = class_bench.SessionOptions(students=30, seed=5, arrival_s=120)
    times = class_bench.arrivals(opt)
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= 120
    assert times == class_bench.arrivals(opt)
    assert times != class_bench.arrivals(class_bench.SessionOptions(students=30, seed=6))


def result(**change) -> class_bench.ClassResult:
    opt = class_bench.SessionOptions(students=2, max_kernels=1, pool_size=0)
    students = [class_bench.Student(0, 0.0, got_in_s=1.0), class_bench.Student(1, 1.0, busy=2,
                busy_before_in=2, got_in_s=40.0)]  # fmt: skip
    students[0].visits.append(class_bench.Visit(0, "upload", served=True, verdicts=["OOD"]))
    fields = dict(
        options=opt, students=students, pool=0, peak_gb=0.5, largest_kernel_gb=0.4,
        server_own_gb=0.1, kernels_when_left=1, kernels_at_end=0, back_s=10.0, counts=[],
        load_cpu_s=1.0, server_cpu_s=1.0, wall_s=100.0, iopub_timeouts=0,
    )  # fmt: skip
    return class_bench.ClassResult(**{**fields, **change})


def missed(r: class_bench.ClassResult) -> list[str]:
    return [t.name for t in class_bench.targets(r) if not t.met]


def test_the_targets_pass_and_miss() -> None:
    assert missed(result()) == []
    assert missed(result(peak_gb=0.51)) == ["memory within the bound"]
    assert missed(result(back_s=None)) == ["kernels back to the pool within 5 min"]
    assert missed(result(back_s=301.0)) == ["kernels back to the pool within 5 min"]
    r = result()
    r.students[1].got_in_s = None
    assert missed(r) == ["every student served (or busy, then served)"]
    r = result()
    r.students[0].visits[0].hung.append("no verdict shown")
    r.students[1].problems.append("console error: boom")
    assert missed(r) == ["no hung page", "no error"]
