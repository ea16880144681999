"""Copy a survey's cutouts into one zarr array per HEALPix partition, reading each pixel once.

A survey's rows are rarely in sky order, so a partition's objects are spread over the whole
image array; reading each partition's rows directly would decompress the survey once per
partition. Instead, as hats-import does with catalog rows, the copy is a shuffle in two
passes, each a list of tasks on the executor (:mod:`backend.pipeline.execution`):

1. *sort*: each contiguous range of survey rows is read once and written to a temporary array
   with its objects grouped by partition (survey order within each group);
2. *gather*: each partition's array is the concatenation of its group from every range, in
   range order, written in chunk-aligned blocks (small partitions are gathered several to a
   task, so a small survey runs as one task in the calling process).

So the objects of a partition's array are in survey order, and ``cutout_row`` (from
:func:`cutout_rows`) gives each catalog row its place there. Memory per task is one range
(~64 MiB of pixels) or one block; the temporary arrays live in the export's hidden folder and
are removed before it is renamed into place.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from backend.hats.layout import cutout_relpath
from backend.hats.partition import Partitioning
from backend.pipeline.execution import SchedulerSpec, executor
from backend.survey import Survey

SHARDS_DIR = ".shards"
CHUNK_OBJECTS = 64  # objects per chunk of a partition's cutout array (as the survey store)
_SHARD_CHUNK = 16  # objects per chunk of a temporary array: less waste at group edges
_RANGE_BYTES = 64 * 2**20  # pixels per sort task and per gather block


def _compressor() -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)


# chunk files named c.K.0.0.0 beside each other: zarr's default c/K/0/0/0 makes three folders
# per chunk, and making and removing folders dominated the copy on this machine's filesystem
_FLAT_KEYS = {"name": "default", "separator": "."}


def partition_of_rows(parts: Partitioning, n: int) -> np.ndarray:
    """(n,) index into ``parts.pixels`` of each survey row."""
    which = np.empty(n, dtype=np.int32)
    for k, rows in enumerate(parts.rows):
        which[rows] = k
    return which


def cutout_rows(parts: Partitioning, n: int) -> np.ndarray:
    """(n,) row of each survey row's cutout in its partition's array (survey order there)."""
    place = np.empty(n, dtype=np.int64)
    for rows in parts.rows:
        place[np.sort(rows)] = np.arange(len(rows))
    return place


@dataclass(frozen=True)
class SortTask:
    """Survey rows ``lo:hi``, grouped by partition (``groups``: their partitions) into
    ``target``."""

    survey_path: Path
    lo: int
    hi: int
    groups: np.ndarray
    target: Path


@dataclass(frozen=True)
class GatherTask:
    """Partition array ``target`` of ``count`` cutouts from ``(array, start, stop)`` slices."""

    target: Path
    count: int
    sources: tuple[tuple[Path, int, int], ...]
    attributes: dict[str, object]
    shape: tuple[int, int, int]


def sort_range(task: SortTask) -> int:
    """Run one :class:`SortTask` (on any worker); returns the number of cutouts."""
    survey = Survey(task.survey_path)
    images = np.asarray(survey.images[task.lo : task.hi])
    order = np.argsort(task.groups, kind="stable")
    out = zarr.create_array(
        store=str(task.target),
        shape=images.shape,
        chunks=(min(_SHARD_CHUNK, len(images)), *images.shape[1:]),
        dtype="float32",
        compressors=_compressor(),
        chunk_key_encoding=_FLAT_KEYS,
        fill_value=0.0,
        overwrite=True,  # a retried task starts again
    )
    out[:] = images[order]
    return len(images)


def gather_partition(task: GatherTask) -> int:
    """Run one :class:`GatherTask` (on any worker); returns the number of cutouts."""
    out = zarr.create_array(
        store=str(task.target),
        shape=(task.count, *task.shape),
        chunks=(min(CHUNK_OBJECTS, task.count), *task.shape),
        dtype="float32",
        compressors=_compressor(),
        chunk_key_encoding=_FLAT_KEYS,
        fill_value=0.0,
        overwrite=True,
        attributes=task.attributes,
    )
    block = _block_objects(task.shape)
    pending: list[np.ndarray] = []
    buffered = written = 0
    for path, start, stop in task.sources:
        pending.append(np.asarray(zarr.open_array(str(path), mode="r")[start:stop]))
        buffered += stop - start
        if buffered >= block:
            data = np.concatenate(pending)
            keep = buffered - buffered % CHUNK_OBJECTS  # chunk-aligned writes
            out[written : written + keep] = data[:keep]
            written += keep
            pending, buffered = [data[keep:]], buffered - keep
    if buffered:
        out[written : written + buffered] = np.concatenate(pending)
        written += buffered
    if written != task.count:
        raise RuntimeError(f"{task.target}: gathered {written} cutouts for {task.count}")
    return written


def gather_partitions(tasks: tuple[GatherTask, ...]) -> int:
    """Run several small :class:`GatherTask` as one task; returns the number of cutouts."""
    return sum(gather_partition(task) for task in tasks)


def _batches(tasks: list[GatherTask], objects: int) -> list[tuple[GatherTask, ...]]:
    """Consecutive tasks grouped until each group has ``objects`` cutouts (a small survey is
    one task, run in this process without starting a cluster)."""
    groups: list[tuple[GatherTask, ...]] = []
    current: list[GatherTask] = []
    for task in tasks:
        current.append(task)
        if sum(t.count for t in current) >= objects:
            groups.append(tuple(current))
            current = []
    if current:
        groups.append(tuple(current))
    return groups


def _block_objects(shape: tuple[int, ...]) -> int:
    per_object = 4 * int(np.prod(shape))
    return max(CHUNK_OBJECTS, (_RANGE_BYTES // per_object) // CHUNK_OBJECTS * CHUNK_OBJECTS)


def write_cutouts(
    survey: Survey,
    parts: Partitioning,
    base: Path,
    *,
    scheduler: SchedulerSpec | str | None = None,
    progress: bool = True,
) -> None:
    """Write every partition's cutout array under ``base`` (see the module docstring)."""
    n = len(survey)
    shape = tuple(int(s) for s in survey.image_shape)
    which = partition_of_rows(parts, n)
    step = _block_objects(shape)
    shards = base / SHARDS_DIR
    shards.mkdir()
    ranges = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    sorts = [
        SortTask(survey.path, lo, hi, which[lo:hi], shards / f"{k}.zarr")
        for k, (lo, hi) in enumerate(ranges)
    ]
    # where each partition's group starts and stops in each sorted range
    counts = np.stack([np.bincount(t.groups, minlength=len(parts.pixels)) for t in sorts])
    ends = np.cumsum(counts, axis=1)
    starts = ends - counts
    gathers = []
    for p, pixel in enumerate(parts.pixels):
        sources = tuple(
            (sorts[k].target, int(starts[k, p]), int(ends[k, p]))
            for k in range(len(sorts))
            if counts[k, p]
        )
        attributes = {
            "survey": survey.name,
            "bands": survey.bands,
            "healpix_order": pixel.order,
            "healpix_pixel": pixel.pixel,
            "rows": "the partition's objects in survey order; cutout_row gives each row's place",
        }
        target = base / cutout_relpath(pixel)
        gathers.append(GatherTask(target, len(parts.rows[p]), sources, attributes, shape))
    with executor(scheduler) as ex:
        ex.map(sort_range, sorts, desc=f"cutouts of {survey.name}: sort" if progress else None)
        ex.map(
            gather_partitions,
            _batches(gathers, step),
            desc=f"cutouts of {survey.name}: gather" if progress else None,
        )
    shutil.rmtree(shards)
