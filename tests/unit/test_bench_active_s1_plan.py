"""The S1 bench's run plan: chosen seeds, random's reference curves taken from an earlier run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.bench_active_s1 import plan_runs, reference_random, seed_list


def _result(path: Path, seeds: int, finals: list[float]) -> Path:
    rounds = [[{"labels": 50, "accuracy": 0.5}, {"labels": 100, "accuracy": f}] for f in finals]
    run = {"seeds": seeds, "features": {"finetune": {"strategies": {"random": {"rounds": rounds}}}}}
    path.write_text(json.dumps(run))
    return path


def test_seed_list_overrides_the_seed_count() -> None:
    assert seed_list(argparse.Namespace(seeds=3, seed_list=None)) == [0, 1, 2]
    assert seed_list(argparse.Namespace(seeds=3, seed_list="2")) == [2]
    assert seed_list(argparse.Namespace(seeds=1, seed_list="2,0,2")) == [0, 2]


def test_random_is_taken_from_the_reference_for_the_seeds_it_holds(tmp_path: Path) -> None:
    ref = reference_random(_result(tmp_path / "r.json", 2, [0.89, 0.9]))
    assert sorted(ref) == [0, 1] and ref[1][-1]["accuracy"] == 0.9

    runs = plan_runs(["random", "margin+diversity"], [0, 1, 2], ref)
    assert runs[0] == ("random", 2)  # only the seed the reference lacks, and first
    assert sorted(runs[1:]) == [("margin+diversity", s) for s in (0, 1, 2)]


def test_a_seed_without_random_anywhere_is_refused(tmp_path: Path) -> None:
    ref = reference_random(_result(tmp_path / "r.json", 2, [0.89, 0.9]))
    assert plan_runs(["margin+diversity"], [0, 1], ref) == [
        ("margin+diversity", 0),
        ("margin+diversity", 1),
    ]
    with pytest.raises(SystemExit, match=r"seeds \[2\]"):
        plan_runs(["margin+diversity"], [0, 1, 2], ref)


def test_a_reference_without_random_rounds_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seeds": 1, "features": {}}))
    with pytest.raises(SystemExit, match=r"bad\.json"):
        reference_random(bad)
