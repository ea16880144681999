"""``ingest hdf``: the Hubble Deep Field picture shipped with scikit-image -> galaxy stamps.

``skimage.data.hubble_deep_field()`` is an RGB (872, 1000, 3) uint8 picture with a few hundred
real galaxies: zero setup, no download. Sources are detected with ``sep`` on the mean of the
three channels (background subtracted, ``threshold`` x global RMS, ``min_area`` pixels), and a
``size`` x ``size`` stamp is cut around each, brightest first. The picture has no WCS, so
ra/dec are NaN; the catalog keeps the detection's x, y (pixels in the picture, row 0 at the
top), flux, a, b (pixels), theta (radians) and npix. Another PNG/JPEG picture can be given
instead of the shipped one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sep
from numpy.typing import ArrayLike

from backend.ingest.images import PictureError, read_picture
from backend.ingest.pipeline import Batch, check_target, partition_rows, write_survey
from backend.ingest.report import IngestError, IngestReport

BANDS = ["R", "G", "B"]
DEFAULT_SIZE = 64
DEFAULT_THRESHOLD = 5.0  # x global background RMS
DEFAULT_MIN_AREA = 20  # pixels above the threshold


def load_hdf_picture(path: str | Path | None = None) -> tuple[np.ndarray, str]:
    """(3, H, W) float32 RGB in [0, 1] and a description of where it came from."""
    if path is None:
        from skimage import data

        rgb = data.hubble_deep_field()
        return rgb.transpose(2, 0, 1).astype(np.float32) / 255.0, "skimage.data.hubble_deep_field"
    file = Path(path).expanduser()
    if not file.is_file():
        raise IngestError(f"{file}: no such file")
    try:
        return read_picture(file), str(file)
    except PictureError as exc:
        raise IngestError(f"{file}: {exc}") from exc


def detect(
    picture: np.ndarray, threshold: float = DEFAULT_THRESHOLD, min_area: int = DEFAULT_MIN_AREA
) -> pd.DataFrame:
    """sep detections on the channel mean of a (3, H, W) picture, brightest first."""
    det = np.ascontiguousarray(picture.mean(axis=0), dtype=np.float32)
    background = sep.Background(det)
    found = sep.extract(
        det - background.back(), threshold, err=background.globalrms, minarea=min_area
    )
    table = pd.DataFrame(
        {
            "x": found["x"],
            "y": found["y"],
            "flux": found["flux"],
            "a": found["a"],
            "b": found["b"],
            "theta": found["theta"],
            "npix": found["npix"],
            "peak": found["peak"],
        }
    )
    table = table[np.isfinite(table["flux"]) & (table["flux"] > 0)]
    return table.sort_values("flux", ascending=False, kind="stable").reset_index(drop=True)


def cut_stamps(
    picture: np.ndarray, x: np.ndarray, y: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, C, size, size) stamps centred on (x, y), zero outside the picture; and a flag
    saying which stamps cross the picture's edge."""
    padded = np.pad(picture, ((0, 0), (size, size), (size, size)))
    x0 = np.round(x).astype(int) - size // 2
    y0 = np.round(y).astype(int) - size // 2
    stamps = np.empty((len(x0), picture.shape[0], size, size), np.float32)
    for k, (i, j) in enumerate(zip(x0 + size, y0 + size, strict=True)):
        stamps[k] = padded[:, j : j + size, i : i + size]
    return stamps, stamp_crosses_edge(picture.shape, x, y, size)


def ingest_hdf(
    survey: str,
    path: str | Path | None = None,
    *,
    size: int = DEFAULT_SIZE,
    threshold: float = DEFAULT_THRESHOLD,
    min_area: int = DEFAULT_MIN_AREA,
    keep_edges: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
    root: Path | None = None,
    progress: bool = True,
    description: str = "",
    scheduler: Any = None,
) -> IngestReport:
    """Detect galaxies in the Hubble Deep Field (or the picture at ``path``) and store stamps.

    Stamps crossing the picture's edge are left out unless ``keep_edges`` (then zero-padded
    and flagged in the ``edge`` column). Detection runs here, on the whole picture; the stamps
    are cut per partition of detections where ``scheduler`` says.
    """
    if size < 8:
        raise IngestError(f"--size {size}: stamps need at least 8 pixels")
    if threshold <= 0 or min_area < 1:
        raise IngestError("--threshold must be > 0 and --min-area >= 1")
    check_target(survey, overwrite, root)
    picture, origin = load_hdf_picture(path)
    if min(picture.shape[1:]) < size:
        raise IngestError(f"{origin}: picture {picture.shape[1:]} is smaller than a {size} stamp")
    table = detect(picture, threshold, min_area)
    table["edge"] = stamp_crosses_edge(picture.shape, table["x"], table["y"], size)
    report = IngestReport(
        survey=survey,
        kind="hdf",
        source=origin,
        options={"size": size, "threshold": threshold, "min_area": min_area},
    )
    edge = table["edge"].to_numpy()
    if not keep_edges and edge.any():
        report.notes.append(
            f"{int(edge.sum())} detections whose {size}px stamp crosses the picture edge were "
            "left out (keep them with --keep-edges)"
        )
        table = table.loc[~edge].reset_index(drop=True)
    if not len(table):
        raise IngestError(
            f"{origin}: no sources detected above {threshold} sigma with {min_area} pixels"
        )
    if limit is not None:
        table = table.iloc[:limit]  # no stamp is cut for nothing
    table.insert(0, "object_id", [f"hdf-{i:04d}" for i in range(len(table))])
    table.insert(1, "ra", np.nan)
    table.insert(2, "dec", np.nan)
    return write_survey(
        _stamps(picture, table, size, scheduler),
        report,
        bands=BANDS,
        image_shape=(size, size),
        total=len(table),
        unit="galaxy",
        description=description or f"galaxy stamps cut from {origin} (sep detections)",
        overwrite=overwrite,
        root=root,
        limit=limit,
        progress=progress,
    )


def stamp_crosses_edge(shape: tuple[int, ...], x: ArrayLike, y: ArrayLike, size: int) -> np.ndarray:
    """For a picture of ``shape`` (..., H, W): whether the ``size`` stamp centred on each
    (x, y) reaches outside it (what :func:`cut_stamps` flags)."""
    height, width = shape[-2:]
    x0 = np.round(np.asarray(x, dtype=float)).astype(int) - size // 2
    y0 = np.round(np.asarray(y, dtype=float)).astype(int) - size // 2
    return (x0 < 0) | (y0 < 0) | (x0 + size > width) | (y0 + size > height)


def _stamps(
    picture: np.ndarray, table: pd.DataFrame, size: int, scheduler: Any = None
) -> Iterator[Batch]:
    """The stamps of ``table``'s detections, in order: partitions of detections (about
    :data:`~backend.ingest.pipeline.PARTITION_BYTES` of stamps each) cut where ``scheduler``
    says (:mod:`backend.pipeline.execution`; the picture goes to each worker once)."""
    from backend.pipeline.execution import executor, partitions

    parts = partitions(len(table), partition_rows(4 * picture.shape[0] * size * size))
    centres = [(table["x"].to_numpy()[lo:hi], table["y"].to_numpy()[lo:hi]) for lo, hi in parts]
    task = StampsPartition(picture, size)
    with executor(scheduler) as ex:
        for (lo, hi), stamps in zip(parts, ex.imap(task, centres), strict=True):
            yield Batch(stamps, table.iloc[lo:hi], n_inputs=hi - lo)


@dataclass(frozen=True, eq=False)
class StampsPartition:
    """``size`` x ``size`` stamps of ``picture`` centred on a partition's (x, y) detections."""

    picture: np.ndarray
    size: int

    def __call__(self, centres: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return cut_stamps(self.picture, centres[0], centres[1], self.size)[0]
