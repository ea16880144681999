"""``ingest images``: a folder of PNG/JPEG colour cutouts (e.g. Galaxy Zoo) -> survey.

Pixels are stored as float R, G, B in [0, 1], row 0 at the top (the survey's display is then
linear with origin "upper"). An object's id is its file stem, which is what ``--id-column``
joins a catalog on; a catalog that brings ra/dec gives the objects their sky positions.
The pictures are decoded per partition of files where ``--scheduler`` says
(:mod:`backend.pipeline.execution`); the survey is the same wherever they are decoded.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from backend.errors import UserError
from backend.ingest.crossmatch import catalog_join
from backend.ingest.pipeline import Batch, check_target, progress_bar, write_survey
from backend.ingest.report import IngestError, IngestReport, Skipped, nothing_usable
from backend.ingest.resize import RESIZE_MODES, ResizeMode, fit_to_shape
from backend.ingest.sources import find_inputs, relative_name, stem, unique_ids

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BANDS = ["R", "G", "B"]
MAX_PIXELS = 25_000_000  # a picture larger than this is not a cutout (and may be a bomb)
#: Pictures decoded per task (one partition).
IMAGE_PARTITION = 512


class PictureError(UserError, ValueError):
    """This picture cannot be used; the message says why."""


def ingest_images(
    path: str | Path,
    survey: str,
    *,
    size: int | None = None,
    resize: ResizeMode = "resample",
    catalog: str | Path | None = None,
    id_column: str | None = None,
    match_radius: float | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    root: Path | None = None,
    progress: bool = True,
    description: str = "",
    scheduler: Any = None,
) -> IngestReport:
    """Ingest the PNG/JPEG pictures under ``path`` (a folder, searched recursively, or a file).

    ``size``: common N x N size (default: the most common size); ``resize``: "resample"
    (default) or "crop". ``catalog`` + ``id_column`` joins a table whose ``id_column`` holds
    the file stems (sky matching needs positions, which pictures only get from such a join).
    The pictures are decoded per partition of files where ``scheduler`` says.
    """
    if resize not in RESIZE_MODES:
        raise IngestError(f"--resize {resize!r}: use one of {', '.join(RESIZE_MODES)}")
    if size is not None and size < 2:
        raise IngestError(f"--size {size}: must be at least 2 pixels")
    if match_radius is not None and catalog is not None:
        raise IngestError(
            "PNG/JPEG pictures carry no sky positions to match on; join the catalog by file "
            "stem with --id-column COL"
        )
    check_target(survey, overwrite, root)
    root_path = Path(path).expanduser()
    files, others = find_inputs(root_path, IMAGE_SUFFIXES, "PNG/JPEG")
    join = catalog_join(catalog, id_column, match_radius, ra_column, dec_column)
    report = IngestReport(
        survey=survey,
        kind="images",
        source=str(root_path),
        options={"size": size, "resize": resize},
    )
    if others:
        report.notes.append(f"{others} files without a PNG/JPEG suffix were ignored")

    sizes = _scan(files, root_path, report, progress, limit)
    if not sizes:
        raise nothing_usable(report)
    shape = (size, size) if size else Counter(sizes.values()).most_common(1)[0][0]
    report.n_inputs = report.n_skipped
    return write_survey(
        _pictures(list(sizes), root_path, shape, resize, scheduler),
        report,
        bands=BANDS,
        image_shape=shape,
        total=len(sizes),
        unit="file",
        join=join,
        description=description or f"PNG/JPEG cutouts from {root_path}",
        overwrite=overwrite,
        root=root,
        limit=limit,
        progress=progress,
    )


def _scan(
    files: list[Path], root: Path, report: IngestReport, progress: bool, limit: int | None
) -> dict[Path, tuple[int, int]]:
    """(H, W) of each readable picture from its header (with a ``limit``, only until that
    many are readable)."""
    sizes: dict[Path, tuple[int, int]] = {}
    with progress_bar(len(files), "scan pictures", "file", progress) as bar:
        for path in files:
            if limit is not None and len(sizes) >= limit:
                break
            try:
                sizes[path] = picture_size(path)
            except PictureError as exc:
                report.skip(relative_name(path, root), str(exc))
            bar.update(1)
    return sizes


def picture_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header; raises :class:`PictureError` for non-pictures."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:  # refused from the header, before any pixel
        raise PictureError(f"decompression bomb: {_bomb_size(exc)} ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PictureError(f"not a readable PNG/JPEG picture ({exc})") from exc
    if width < 2 or height < 2:
        raise PictureError(f"degenerate picture of {width}x{height} pixels")
    if width * height > MAX_PIXELS:
        raise PictureError(f"{width}x{height} pixels is too large for a cutout")
    return height, width


def read_picture(path: Path, draft: tuple[int, int] | None = None) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1]; grey pictures are repeated, alpha is dropped.

    ``draft`` (H, W) lets JPEG decoding shrink by a power of two on the way (much faster when
    the picture is resampled to a smaller size afterwards).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if draft is not None and im.format == "JPEG":
                    im.draft("RGB", (draft[1], draft[0]))
                im.load()
                pixels = _to_rgb_array(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PictureError(f"decompression bomb: {_bomb_size(exc)} ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PictureError(f"cannot decode the picture ({exc})") from exc
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _bomb_size(exc: Exception) -> str:
    """ "400,000,000 pixels": the count from Pillow's message (it does not give the size)."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(match.group(1)):,} pixels" if match else "too many pixels"


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey PNG
        grey = np.asarray(im, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if im.mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _pictures(
    files: list[Path],
    root: Path,
    shape: tuple[int, int],
    resize: ResizeMode,
    scheduler: Any = None,
) -> Iterator[Batch | Skipped]:
    """The pictures' pixels, in order: partitions of :data:`IMAGE_PARTITION` files decoded
    where ``scheduler`` says (:mod:`backend.pipeline.execution`; the workers must see the
    files)."""
    from backend.pipeline.execution import executor, partitions

    ids = unique_ids(stem(p, IMAGE_SUFFIXES) for p in files)
    pairs = list(zip(files, ids, strict=True))
    groups = [pairs[lo:hi] for lo, hi in partitions(len(pairs), IMAGE_PARTITION)]
    task = PicturesPartition(root, shape, resize)
    with executor(scheduler) as ex:
        for items in ex.imap(task, groups):
            yield from items


@dataclass(frozen=True)
class PicturesPartition:
    """Pixels of a group of pictures as :class:`Batch` (or :class:`Skipped`) items."""

    root: Path
    shape: tuple[int, int]
    resize: ResizeMode

    def __call__(self, group: list[tuple[Path, str]]) -> list[Batch | Skipped]:
        return [self._one(path, object_id) for path, object_id in group]

    def _one(self, path: Path, object_id: str) -> Batch | Skipped:
        name = relative_name(path, self.root)
        draft = self.shape if self.resize == "resample" else None
        try:
            pixels = fit_to_shape(read_picture(path, draft), self.shape, self.resize)
        except PictureError as exc:
            return Skipped(name, str(exc))
        except Exception as exc:  # one bad file never stops the ingestion
            return Skipped(name, f"cannot use the picture ({type(exc).__name__}: {exc})")
        row: dict[str, Any] = {"object_id": object_id, "file": name}
        return Batch(pixels[None], [row])
