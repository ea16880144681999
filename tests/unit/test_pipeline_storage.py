"""Product storage and lineage records: atomic publication, hashes, planning without models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.pipeline.kinds import PRODUCTS, Target, check_product
from backend.pipeline.lineage import content_hashes, lineage_path, read_lineage, stamp, verify
from backend.pipeline.storage import (
    ProductError,
    open_embeddings,
    publish,
    sweep_staging,
    write_embeddings,
)
from backend.survey import Survey


def test_publish_moves_every_file_in_or_none(home: Path) -> None:
    folder = home / "products" / "s" / "encoder-v0001"
    with publish(folder, ["a.bin", "b.bin"]) as staging:
        (staging / "a.bin").write_bytes(b"a")
        (staging / "b.bin").write_bytes(b"b")
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.bin"]

    with pytest.raises(RuntimeError), publish(folder, ["a.bin", "b.bin"]) as staging:
        (staging / "a.bin").write_bytes(b"new a")
        raise RuntimeError("died between the files")
    assert (folder / "a.bin").read_bytes() == b"a", "the old product stays whole"
    only_a = pytest.raises(ProductError, match=r"wrote no b\.bin")
    with only_a, publish(folder, ["a.bin", "b.bin"]) as staging:
        (staging / "a.bin").write_bytes(b"new a")
    assert (folder / "a.bin").read_bytes() == b"a"
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.bin"]


def test_embeddings_appear_only_when_filled_and_are_checked(home: Path) -> None:
    def fail(out: np.ndarray) -> None:
        out[:2] = 1.0
        raise OSError("worker lost")

    with pytest.raises(OSError):
        write_embeddings("s", "encoder", "v0001", (4, 3), fail)
    folder = home / "products" / "s" / "encoder-v0001"
    assert list(folder.iterdir()) == []
    with pytest.raises(ProductError, match="python -m backend prepare --survey s"):
        open_embeddings("s", "encoder", "v0001")
    write_embeddings("s", "encoder", "v0001", (4, 3), lambda out: out.__setitem__(..., 2.0))
    emb = open_embeddings("s", "encoder", "v0001")
    assert emb.shape == (4, 3) and float(emb.sum()) == 24.0
    np.save(folder / "embeddings.npy", np.zeros(5, np.float64))
    with pytest.raises(ProductError, match=r"expected \(N, D\) float32"):
        open_embeddings("s", "encoder", "v0001")


def test_lineage_records_hash_the_files_and_notice_changes(tiny_survey: Survey) -> None:
    from backend.pipeline.lineage import write_lineage

    target = Target("embeddings", "tiny", "encoder", "v0001")
    assert stamp(target) is None and read_lineage(target) is None
    write_embeddings("tiny", "encoder", "v0001", (150, 4), lambda out: out.__setitem__(..., 1.0))
    assert stamp(target).startswith("mtime:")
    record = write_lineage(target, {"encoder": "v0001"}, None, 0.5)
    on_disk = json.loads(lineage_path(target).read_text())
    assert on_disk == record and record["files"] == content_hashes(target)[0]
    assert stamp(target) == record["content_hash"] and verify(target)
    emb = np.load(target.paths[0], mmap_mode="r+")
    emb[0, 0] = 2.0
    emb.flush()
    del emb
    assert not verify(target), "a changed file no longer matches its record"


def test_product_names_are_checked() -> None:
    assert check_product("predictions:emulator") == ("predictions", "emulator")
    assert check_product("map") == ("map", None)
    with pytest.raises(ProductError, match="unknown product 'maps'"):
        check_product("maps")
    with pytest.raises(ProductError, match="only predictions take a model kind"):
        check_product("map:classifier")
    assert set(PRODUCTS) >= {"embeddings", "predictions", "map", "index", "scores", "evaluation"}


def test_a_survey_without_models_plans_nothing_and_says_why(tiny_survey: Survey) -> None:
    from backend.pipeline.planner import plan

    the_plan = plan("tiny")
    assert the_plan.todo == [] and the_plan.items == {}
    assert any("no encoder for survey tiny" in note for note in the_plan.notes)


def test_staging_left_by_a_dead_build_is_swept(home: Path) -> None:
    folder = home / "products" / "s" / "encoder-v0001"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = folder / f".staging-{dead.stdout.strip()}-abcd1234"
    mine = folder / f".staging-{os.getpid()}-abcd1234"
    for path in (gone, mine):
        path.mkdir(parents=True)
        (path / "map.npy").write_bytes(b"x")
    assert sweep_staging("s") == 1
    assert not gone.exists() and mine.exists()
