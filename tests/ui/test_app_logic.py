"""The app's pure parts without a browser: selections, colouring, the labelling queue, uploads,
SAMP, and the rule that the app never imports torch."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from app.colouring import GREY, OTHER, categorical, colour_specs, robust_range
from app.labelling import LabelQueue
from app.selection import box_indices, lasso_indices
from backend.latent.errors import LatentError
from tests.conftest import REPO_ROOT


def brute_force_inside(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(x), dtype=bool)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        if y1 != y2:
            inside ^= ((y1 <= y) != (y2 <= y)) & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return np.flatnonzero(inside)


@pytest.mark.parametrize("seed", range(12))
def test_lasso_matches_the_even_odd_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 50_000))
    x, y = rng.normal(size=(2, n)).astype(np.float32)
    x[::97] = np.nan  # never selected, never a crash
    m = int(rng.integers(3, 200))
    if seed % 3 == 0:  # self-intersecting scribble
        poly = rng.normal(size=(m, 2))
    else:
        angle = np.sort(rng.uniform(0, 2 * np.pi, m))
        radius = rng.uniform(0.2, 2.0, m)
        poly = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    if seed % 4 == 0:
        poly = np.round(poly, 1)  # vertices on a lattice: ties with the grid
    expected = brute_force_inside(x.astype(float), y.astype(float), poly)
    assert np.array_equal(lasso_indices(x, y, poly), expected)


def test_box_and_degenerate_lassos() -> None:
    x = np.array([0.0, 1.0, 2.0, np.nan], dtype=np.float32)
    y = np.array([0.0, 1.0, 2.0, 1.0], dtype=np.float32)
    assert box_indices(x, y, (2.5, 2.5, 0.5, 0.5)).tolist() == [1, 2]  # corners in any order
    assert lasso_indices(x, y, np.zeros((2, 2))).size == 0
    assert lasso_indices(x, y, [[0, 0], [1, 1], [2, 2]]).size == 0  # no area


def test_lasso_over_a_million_points_is_quick() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 1_000_000)).astype(np.float32)
    angle = np.linspace(0, 2 * np.pi, 300, endpoint=False)
    poly = np.column_stack([np.cos(angle), np.sin(angle)]) * (1 + 0.2 * np.sin(5 * angle))[:, None]
    lasso_indices(x, y, poly)  # compile
    t0 = time.perf_counter()
    found = lasso_indices(x, y, poly)
    assert time.perf_counter() - t0 < 1.0
    assert 0.3 < len(found) / len(x) < 0.5


def test_categories_keep_schema_colours_and_fold_the_rest() -> None:
    values = pd.Series(
        ["spiral"] * 5 + ["elliptical"] * 3 + [""] * 2 + [f"x{i}" for i in range(30)]
    )
    cats, colours = categorical(values, {"spiral": "#111111", "elliptical": "#222222"})
    assert list(cats.categories[:2]) == ["spiral", "elliptical"]
    assert colours["spiral"] == "#111111" and colours["none"] == GREY and colours[OTHER] == GREY
    assert len(cats.categories) <= 16
    single, colours = categorical(pd.Series(["a", "a"]))
    assert len(single.categories) == 2  # holoviews shades a lone category as nothing


def test_colour_menu_lists_model_outputs_first() -> None:
    table = pd.DataFrame({
        "object_id": ["a", "b", "c"], "ra": [1.0, 2.0, 3.0], "kind": ["x", "y", "x"],
        "pred_class": ["s", "e", "s"], "entropy": [0.1, 0.5, 0.9], "redshift_mean": [0.1, 0.2, 0.3],
        "redshift_sigma": [0.01, 0.02, 0.03], "anomaly_score": [0.5, 0.2, 0.9],
        "score_knn": [0.1, 0.2, 0.3], "constant": [1.0, 1.0, 1.0],
    })  # fmt: skip
    keys = [s.key for s in colour_specs(table)]
    assert keys[:3] == ["density", "pred_class", "entropy"]
    assert {"anomaly_score", "score_knn", "labels", "redshift_mean", "catalog:kind"} <= set(keys)
    assert "catalog:object_id" not in keys and "catalog:constant" not in keys
    assert robust_range(np.array([np.nan, 1.0, 1.0])) == (0.5, 1.5)


def test_label_queue_is_uncertainty_first_skips_labelled_and_undo_reopens() -> None:
    table = pd.DataFrame({"object_id": list("abcde"), "entropy": [0.1, 0.9, 0.5, 0.7, np.nan]})
    queue = LabelQueue.build(table, labelled_ids={"d"})
    assert "uncertain" in queue.reason
    assert queue.current() == 1 and queue.upcoming(2) == [2, 0]
    queue.finish(1)
    queue.finish(2)
    assert queue.current() == 0
    queue.reopen(1)  # undo of "b"
    assert queue.current() == 1 and queue.upcoming(1) == [0]
    assert queue.remaining == 3
    random_queue = LabelQueue.build(table.drop(columns="entropy"), set())
    assert "random" in random_queue.reason and sorted(random_queue.order) == list(range(5))


def test_uploads_are_checked_with_clear_messages(tmp_path: object) -> None:
    import io

    from app.uploads import preview_uri, read_upload
    from backend.survey.meta import DisplaySettings, SurveyMeta

    meta = SurveyMeta(
        name="t", bands=["g", "r", "i"], image_shape=[3, 8, 8], count=1, source="test",
        display=DisplaySettings(rgb_bands=["i", "r", "g"]),
    )  # fmt: skip
    good = io.BytesIO()
    np.save(good, np.ones((3, 8, 8), np.float32))
    assert read_upload(good.getvalue(), "cut.npy", meta).shape == (1, 3, 8, 8)
    assert preview_uri(np.ones((3, 8, 8)), meta).startswith("data:image/png;base64,")
    with pytest.raises(LatentError, match="unsupported type"):
        read_upload(b"hello", "notes.txt", meta)
    with pytest.raises(LatentError, match="no file uploaded"):
        read_upload(None, "", meta)
    with pytest.raises(LatentError, match="too large"):
        read_upload(b"0" * (17 * 2**20), "big.fits", meta)
    nan = io.BytesIO()
    np.save(nan, np.full((3, 8, 8), np.nan, np.float32))
    with pytest.raises(LatentError, match="NaN"):
        read_upload(nan.getvalue(), "nan.npy", meta)
    assert read_upload(nan.getvalue(), "nan.npy", meta, fill_nonfinite=True).max() == 0
    wrong = io.BytesIO()
    np.save(wrong, np.ones((4, 8, 8), np.float32))
    with pytest.raises(LatentError, match="expects 3"):
        read_upload(wrong.getvalue(), "four.npy", meta)


def test_samp_says_when_no_hub_or_no_receiver_and_reaches_topcat_like_clients(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:

    from app.samp import SampUnavailable, send_table

    monkeypatch.setenv("HOME", str(tmp_path))  # the hub's lock file is ~/.samp
    monkeypatch.delenv("SAMP_HUB", raising=False)
    table = pd.DataFrame({"object_id": ["a", "b"], "ra": [1.0, 2.0]})
    with pytest.raises(SampUnavailable, match="no SAMP hub"):
        send_table(table, "sel")
    from pyvo.samp import SAMPHubServer, SAMPIntegratedClient

    hub = SAMPHubServer(web_profile=False, mode="single")
    hub.start()
    client = SAMPIntegratedClient(name="FakeTopcat")
    received: list[dict] = []
    try:
        with pytest.raises(SampUnavailable, match="no application that loads tables"):
            send_table(table, "sel", timeout=10)
        client.connect()
        client.bind_receive_notification(
            "table.load.votable",
            lambda *args, **kw: received.extend(a for a in args if isinstance(a, dict)),
        )
        summary = send_table(table, "sel", timeout=10)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "FakeTopcat" in summary
        urls = [str(p.get("url", "")) for p in received]
        assert any("/sel-" in u and u.endswith(".vot") for u in urls), received
    finally:
        if client.is_connected:
            client.disconnect()
        hub.stop()


def test_app_modules_never_import_torch() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import app, app.views, app.widgets\n"
        "for pkg in (app, app.views, app.widgets):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != 'main':\n"
        "            importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "for name in ('backend.active.loop', 'backend.active.queue', 'backend.jobs.api'):\n"
        "    importlib.import_module(name)  # what the app calls when a label is stored\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_categorical_shading_matches_datashader() -> None:
    import datashader as ds
    import datashader.transfer_functions as tf

    from app.shading import categorical_rgba

    rng = np.random.default_rng(3)
    n = 20_000
    x, y = rng.normal(size=(2, n)).astype(np.float32)
    x[::101] = np.nan
    names = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    cats = pd.Categorical(names, categories=["a", "b", "c", "unused"])
    key = {"a": "#e45756", "b": "#4c78a8", "c": "#54a24b", "unused": "#888888"}
    view = ((-2.0, 2.5), (-2.5, 2.0))
    ours = categorical_rgba(x, y, cats, key, *view, 120, 90, min_alpha=170)
    frame = pd.DataFrame({"x": x, "y": y, "v": cats})
    agg = ds.Canvas(120, 90, x_range=view[0], y_range=view[1]).points(
        frame, "x", "y", ds.count_cat("v")
    )
    ref = tf.shade(agg, color_key=key, min_alpha=170).to_numpy().view(np.uint8).reshape(90, 120, 4)
    ref = ref[::-1]  # datashader's row 0 is the bottom
    assert np.array_equal(ours[..., 3] > 0, ref[..., 3] > 0)
    both = (ours[..., 3] > 0) & (ref[..., 3] > 0)
    assert np.abs(ours[..., :3].astype(int) - ref[..., :3])[both].max() <= 1
    assert np.abs(ours[..., 3].astype(int) - ref[..., 3])[both].max() <= 1
