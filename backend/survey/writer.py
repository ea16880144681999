"""Atomic construction of a survey folder.

A :class:`SurveyWriter` builds the survey in a hidden temporary folder beside the final one and
renames it into place only when everything was written; an exception or a killed process leaves
no half survey (stale temporary folders of dead processes are swept by the next writer).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from backend.atomic import pid_alive
from backend.config import get_settings
from backend.survey.catalog_stream import CatalogStream
from backend.survey.ids import LOOKUP_FILE
from backend.survey.meta import DisplaySettings, SurveyError, SurveyMeta, validate_survey_name
from backend.survey.render import default_display
from backend.survey.skycounts import SKY_COUNTS_FILE

INCOMING_PREFIX = ".incoming-"
_RESERVED_FILES = {
    "images.zarr",
    "catalog.parquet",
    LOOKUP_FILE,
    SKY_COUNTS_FILE,
    "survey.json",
    "writer.pid",
}
_FLUSH_BYTES = 64 * 2**20  # pixels buffered before an append to zarr
_SHARD_BYTES = 16 * 2**20  # uncompressed pixels per shard file of images.zarr
_DISPLAY_SAMPLE_BYTES = 16 * 2**20  # pixels kept to choose the display stretch


class SurveyWriter:
    """Append (images, catalog) batches, then commit atomically on a clean ``with`` exit.

    >>> with SurveyWriter("demo", bands=["g", "r"], image_shape=(64, 64), source="x") as w:
    ...     w.append(images, catalog)          # images (n, C, H, W); catalog: n rows
    """

    def __init__(
        self,
        name: str,
        bands: Sequence[str],
        image_shape: tuple[int, int],
        source: str,
        *,
        pixel_scale: float | None = None,
        display: DisplaySettings | None = None,
        description: str = "",
        extra: dict | None = None,
        overwrite: bool = False,
        root: Path | None = None,
        chunk_objects: int = 64,
    ) -> None:
        self.name = validate_survey_name(name)
        self.bands = [str(b) for b in bands]
        if len(set(self.bands)) != len(self.bands) or not self.bands:
            raise SurveyError(f"survey {name}: band names must be unique and non-empty")
        self.shape = (len(self.bands), int(image_shape[0]), int(image_shape[1]))
        self.source = source
        self.pixel_scale = pixel_scale
        self.display = display
        self.description = description
        self.extra = dict(extra or {})
        self.overwrite = overwrite
        self.root = Path(root) if root else get_settings().surveys_dir
        self.final_path = self.root / self.name
        self.chunk_objects = chunk_objects
        object_bytes = 4 * int(np.prod(self.shape))
        chunks_per_shard = max(1, _SHARD_BYTES // (object_bytes * chunk_objects))
        self.shard_objects = chunk_objects * chunks_per_shard
        self._flush_objects = self.shard_objects * max(1, _FLUSH_BYTES // _SHARD_BYTES)
        self._sample_objects = max(1, min(256, _DISPLAY_SAMPLE_BYTES // object_bytes))
        self._files: dict[str, bytes] = {}
        self.tmp_path: Path | None = None
        self._array: zarr.Array | None = None
        self._catalog: CatalogStream | None = None
        self._image_buf: list[np.ndarray] = []
        self._buffered = 0
        self._sample: list[np.ndarray] = []
        self._sampled = 0
        self.count = 0

    # -- context management ---------------------------------------------------------------
    def __enter__(self) -> SurveyWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        sweep_stale_incoming(self.root)
        if self.final_path.exists() and not self.overwrite:
            raise SurveyError(
                f"survey {self.name!r} already exists at {self.final_path}; "
                "choose another name or pass --overwrite"
            )
        self.tmp_path = self.root / f"{INCOMING_PREFIX}{self.name}-{uuid.uuid4().hex[:8]}"
        self.tmp_path.mkdir()
        try:
            (self.tmp_path / "writer.pid").write_text(str(os.getpid()))
            self._array = zarr.create_array(
                store=str(self.tmp_path / "images.zarr"),
                shape=(0, *self.shape),
                chunks=(self.chunk_objects, *self.shape),
                shards=(self.shard_objects, *self.shape),
                dtype="float32",
                compressors=BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle),
                fill_value=0.0,
            )
            self._catalog = CatalogStream(self.tmp_path, self.name)
        except BaseException:  # __exit__ does not run when __enter__ fails (a full disk, say)
            shutil.rmtree(self.tmp_path, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self.tmp_path is not None and self.tmp_path.exists():
                shutil.rmtree(self.tmp_path, ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------
    def append(self, images: np.ndarray, catalog: pd.DataFrame) -> int:
        """Add ``len(images)`` objects; NaN/inf pixels are replaced by 0 and counted.

        Returns the number of non-finite pixels replaced in this batch.
        """
        if self._array is None:
            raise RuntimeError("SurveyWriter.append outside its `with` block")
        images = np.asarray(images)
        if images.ndim == 3 and self.shape[0] == 1:
            images = images[:, None]
        if images.ndim != 4 or tuple(images.shape[1:]) != self.shape:
            raise SurveyError(
                f"survey {self.name}: images of shape {tuple(images.shape)} do not match "
                f"(n, {', '.join(map(str, self.shape))})"
            )
        if len(catalog) != len(images):
            raise SurveyError(
                f"survey {self.name}: {len(images)} images but {len(catalog)} catalog rows"
            )
        images = images.astype(np.float32, copy=True)
        bad = ~np.isfinite(images)
        bad_per_object = bad.reshape(len(images), -1).sum(axis=1)
        if bad_per_object.any():
            images[bad] = 0.0
        self._catalog.append(catalog, bad_per_object)
        self._keep_sample(images)
        self._image_buf.append(images)
        self._buffered += len(images)
        self.count += len(images)
        if self._buffered >= self._flush_objects:
            self._flush()
        return int(bad_per_object.sum())

    def add_file(self, name: str, content: bytes) -> None:
        """Store an extra file (e.g. an ingestion report) in the survey folder on commit."""
        if "/" in name or name.startswith(".") or name in _RESERVED_FILES:
            raise SurveyError(f"survey {self.name}: cannot add a file named {name!r}")
        self._files[name] = bytes(content)

    def _keep_sample(self, images: np.ndarray) -> None:
        room = self._sample_objects - self._sampled
        if room > 0:
            self._sample.append(images[:room])
            self._sampled += len(self._sample[-1])

    def _flush(self, final: bool = False) -> None:
        """Append the buffered pixels to zarr: whole shards only (each shard file is written
        once), and the rest too when ``final``."""
        if not self._image_buf:
            return
        block = np.concatenate(self._image_buf, axis=0)
        keep = len(block) if final else len(block) // self.shard_objects * self.shard_objects
        self._array.append(block[:keep], axis=0)
        rest = block[keep:]
        self._image_buf = [rest] if len(rest) else []
        self._buffered = len(rest)

    def _commit(self) -> None:
        self._flush(final=True)
        if self.count == 0:
            raise SurveyError(f"survey {self.name}: no objects were written")
        self._catalog.finish(self.tmp_path / "catalog.parquet")
        sample = np.concatenate(self._sample) if self._sample else None
        display = self.display or default_display(self.bands, sample)
        meta = SurveyMeta(
            name=self.name,
            bands=self.bands,
            image_shape=list(self.shape),
            count=self.count,
            source=self.source,
            pixel_scale=self.pixel_scale,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            display=display,
            n_nonfinite_pixels=self._catalog.n_bad_pixels,
            description=self.description,
            extra=self.extra,
        )
        meta.write(self.tmp_path / "survey.json")
        for name, content in self._files.items():
            (self.tmp_path / name).write_bytes(content)
        (self.tmp_path / "writer.pid").unlink()
        self._swap_into_place()

    def _swap_into_place(self) -> None:
        trash = None
        if self.final_path.exists():
            if not self.overwrite:
                raise SurveyError(f"survey {self.name!r} appeared while writing; not replaced")
            trash = self.root / f"{INCOMING_PREFIX}old-{self.name}-{uuid.uuid4().hex[:8]}"
            os.rename(self.final_path, trash)
        os.rename(self.tmp_path, self.final_path)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def sweep_stale_incoming(root: Path) -> list[Path]:
    """Remove temporary survey folders left by writer processes that no longer run."""
    removed = []
    for path in root.glob(f"{INCOMING_PREFIX}*"):
        pid_file = path / "writer.pid"
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
