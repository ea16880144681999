"""Importing embeddings computed elsewhere as an encoder version of a survey.

A file (parquet, npy, HDF5) gives one vector per object, keyed by object id, matched by RA/Dec
(:class:`~backend.ingest.crossmatch.CatalogJoin`) or in survey order. Every object must get
exactly one finite vector of one dimension; then a registry version of kind ``encoder`` (config
kind ``imported_embeddings``, a placeholder state dict, provenance) is saved and its
``embeddings.npy`` written with the embed step's writer, so maps, indexes, rankings and the app
use it like any encoder's. Such a version cannot embed new images.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ingest.crossmatch import CatalogJoin, id_strings
from backend.modelling.foreign import ImportModelError, sha256
from backend.pipeline.storage import EMBEDDINGS_FILE
from backend.products import ProductError, product_dir, write_embeddings
from backend.registry import ModelRegistry, ModelVersion, RegistryError
from backend.survey import Survey

KIND = "imported_embeddings"
ID_NAMES = ("object_id", "objid", "id", "ids", "object_ids")
RA_NAMES = ("ra", "ra_deg", "raj2000")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000")
CHUNK = 65_536
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class VectorFile:
    """Vectors (M, D) read from a file, with ids or positions when the file has them."""

    path: Path
    vectors: Any  # (M, D) array-like (np.memmap for .npy)
    ids: np.ndarray | None = None  # (M,) str
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class EmbeddingsRequest:
    path: Path
    survey: str
    id_column: str | None = None
    match_radius: float | None = None
    ra_column: str | None = None
    dec_column: str | None = None
    vector_column: str | None = None
    ids_file: Path | None = None
    name: str | None = None
    embedding_dim: int | None = None
    dtype: str = "auto"  # how the product stores them: float32, float16 or auto (by size)


def import_embeddings(
    req: EmbeddingsRequest, *, activate: bool = False
) -> tuple[ModelVersion, Path, list[str]]:
    """Validate, register and write the embeddings product; returns (version, path, notes)."""
    survey = Survey.open(req.survey)
    path = Path(req.path).expanduser()
    if not path.is_file():
        raise ImportModelError(f"{path}: no such file")
    if req.id_column and req.match_radius is not None:
        raise ImportModelError(
            "key the vectors by id (--id-column) or by position (--match-radius), not both"
        )
    data = read_vector_file(req, path)
    rows, notes = _rows_for_survey(req, data, survey)
    dtype = stored_dtype(req.dtype, len(survey))
    dim = _check_vectors(req, data, rows, survey, dtype)
    name = req.name or path.stem
    provenance = {
        "format": _format(path),
        "file": str(path.resolve()),
        "sha256": sha256(path),
        "dimension": dim,
        "name": name,
        "keyed_by": "position"
        if req.match_radius is not None
        else ("id" if data.ids is not None else "row order"),
        "match_radius_arcsec": req.match_radius,
        "file_rows": len(data.vectors),
        "stored_dtype": dtype,
        "notes": data.notes + notes,
    }
    config = {
        "kind": KIND,
        "bands": list(survey.bands),
        "embedding_dim": dim,
        "name": name,
        "survey": survey.name,
        "source": provenance,
    }
    registry = ModelRegistry()
    version = registry.save(
        "encoder", {}, config, survey=survey.name, training={"imported": provenance}
    )
    try:
        out_path = write_embeddings(
            survey.name, "encoder", version.version, (len(survey), dim),
            _filler(data.vectors, rows), dtype=dtype,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(version.path, ignore_errors=True)
        raise
    if activate:
        registry.set_active(survey.name, "encoder", version.version)
    return version, out_path, provenance["notes"]


def stored_dtype(wanted: str, n: int) -> str:
    """``float32`` or ``float16``; ``auto``: float16 above
    :func:`backend.config.float16_embeddings_threshold` objects (half the disk; cosine
    similarities change by about 1e-3, which re-ranking and maps tolerate)."""
    from backend.config import float16_embeddings_threshold

    if wanted == "auto":
        return "float16" if n > float16_embeddings_threshold() else "float32"
    if wanted not in ("float32", "float16"):
        raise ImportModelError(f"--dtype {wanted!r}: choose float32, float16 or auto")
    return wanted


def imported_product(survey: str, version: ModelVersion) -> Path:
    """The embeddings written when ``version`` (imported embeddings) was imported."""
    owner = version.config.get("survey") or version.meta.get("survey")
    if owner != survey:
        raise RegistryError(
            f"encoder {version.version} holds embeddings imported for survey {owner!r}; it cannot "
            f"embed the objects of survey {survey!r}"
        )
    path = product_dir(survey, "encoder", version.version) / EMBEDDINGS_FILE
    if not path.is_file():
        source = version.config.get("source", {})
        raise ProductError(
            f"the embeddings of encoder {version.version} (imported from {source.get('file')}) "
            f"are gone; import the file again with `python -m backend import embeddings ...`"
        )
    return path


# -- reading -----------------------------------------------------------------------------------
def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".h5", ".hdf5", ".hdf")):
        return "hdf5"
    raise ImportModelError(f"{path}: unknown embeddings format (use .parquet, .npy, .h5/.hdf5)")


def read_vector_file(req: EmbeddingsRequest, path: Path) -> VectorFile:
    fmt = _format(path)
    try:
        if fmt == "parquet":
            return _read_parquet(req, path)
        if fmt == "npy":
            return _read_npy(req, path)
        return _read_hdf5(req, path)
    except ImportModelError:
        raise
    except Exception as exc:  # pyarrow/numpy/h5py raise many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ImportModelError(
            f"{path}: cannot read it as {fmt} ({type(exc).__name__}: {reason})"
        ) from exc


def _read_parquet(req: EmbeddingsRequest, path: Path) -> VectorFile:
    frame = pd.read_parquet(path)
    id_col = _pick(list(frame.columns), req.id_column, ID_NAMES, path, "id", "--id-column")
    ra_col = dec_col = None
    if req.match_radius is not None:
        ra_col = _pick(
            list(frame.columns), req.ra_column, RA_NAMES, path, "RA", "--ra-column", True
        )
        dec_col = _pick(
            list(frame.columns), req.dec_column, DEC_NAMES, path, "Dec", "--dec-column", True
        )
    positions = {c for c in frame.columns if str(c).lower() in RA_NAMES + DEC_NAMES}
    keys = {c for c in (id_col, ra_col, dec_col) if c is not None} | positions
    vectors = _parquet_vectors(frame, req.vector_column, keys, path)
    out = VectorFile(path, vectors)
    if id_col is not None and req.match_radius is None:
        out.ids = id_strings(frame[id_col]).to_numpy(dtype=str)
    if ra_col is not None:
        out.ra = pd.to_numeric(frame[ra_col], errors="coerce").to_numpy(dtype=float)
        out.dec = pd.to_numeric(frame[dec_col], errors="coerce").to_numpy(dtype=float)
    return out


def _parquet_vectors(
    frame: pd.DataFrame, wanted: str | None, keys: set[str], path: Path
) -> np.ndarray:
    """One list/array column (or ``wanted``), else every numeric column but the keys."""
    if wanted is not None and wanted not in frame.columns:
        raise ImportModelError(
            f"{path}: no column {wanted!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    lists = [
        c
        for c in frame.columns
        if frame[c].dtype == object and c not in keys and _is_vectors(frame[c])
    ]
    column = wanted if wanted is not None else (lists[0] if len(lists) == 1 else None)
    if len(lists) > 1 and wanted is None:
        raise ImportModelError(
            f"{path}: several vector columns ({', '.join(lists)}); pick one with --vector-column"
        )
    if column is not None:
        cells = frame[column].to_list()
        lengths = {len(np.atleast_1d(v)) if v is not None else 0 for v in cells}
        if len(lengths) > 1:
            raise ImportModelError(
                f"{path}: column {column!r} holds vectors of different lengths ({', '.join(map(str, sorted(lengths)[:5]))})"
            )
        if not cells:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.asarray(v, dtype=np.float64) for v in cells])
    numeric = [
        c for c in frame.columns if c not in keys and pd.api.types.is_numeric_dtype(frame[c])
    ]
    if not numeric:
        raise ImportModelError(
            f"{path}: no vector column (a list column or numeric columns besides the ids)"
        )
    return frame[numeric].to_numpy(dtype=np.float64)


def _is_vectors(column: pd.Series) -> bool:
    first = column.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], list | tuple | np.ndarray)


def _read_npy(req: EmbeddingsRequest, path: Path) -> VectorFile:
    if req.match_radius is not None:
        raise ImportModelError(
            f"{path}: an .npy file has no positions; use --ids FILE or survey order"
        )
    vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    out = VectorFile(path, vectors)
    if req.ids_file is not None:
        ids_path = Path(req.ids_file).expanduser()
        if not ids_path.is_file():
            raise ImportModelError(f"{ids_path}: no such file (--ids)")
        if ids_path.suffix == ".npy":
            raw = np.load(ids_path, allow_pickle=False)
            out.ids = id_strings(pd.Series(raw)).to_numpy(dtype=str)
        else:
            lines = [line.strip() for line in ids_path.read_text().splitlines()]
            out.ids = np.array([x for x in lines if x], dtype=str)
        if len(out.ids) != len(vectors):
            raise ImportModelError(
                f"{ids_path}: {len(out.ids)} ids for {len(vectors)} vectors in {path}"
            )
    return out


def _read_hdf5(req: EmbeddingsRequest, path: Path) -> VectorFile:
    import h5py

    with h5py.File(path, "r") as h5:
        datasets: dict[str, Any] = {}

        def collect(name: str, obj: Any) -> None:  # returning a value would stop the visit
            if isinstance(obj, h5py.Dataset):
                datasets[name] = obj

        h5.visititems(collect)
        names = list(datasets)
        if req.vector_column is not None:
            if req.vector_column not in datasets:
                raise ImportModelError(
                    f"{path}: no dataset {req.vector_column!r} (datasets: {', '.join(names)})"
                )
            vec_name = req.vector_column
        else:
            two_d = [
                n
                for n in names
                if datasets[n].ndim == 2 and np.issubdtype(datasets[n].dtype, np.number)
            ]
            if len(two_d) != 1:
                raise ImportModelError(
                    f"{path}: {'several' if two_d else 'no'} 2-D numeric datasets "
                    f"({', '.join(two_d) or ', '.join(names)}); name the vectors with --vector-column"
                )
            vec_name = two_d[0]
        vectors = np.asarray(datasets[vec_name][()])
        out = VectorFile(path, vectors)
        flat = [n for n in names if datasets[n].ndim == 1]
        if req.match_radius is not None:
            ra = _pick(flat, req.ra_column, RA_NAMES, path, "RA", "--ra-column", True)
            dec = _pick(flat, req.dec_column, DEC_NAMES, path, "Dec", "--dec-column", True)
            out.ra = np.asarray(datasets[ra][()], dtype=float)
            out.dec = np.asarray(datasets[dec][()], dtype=float)
        else:
            id_name = _pick(flat, req.id_column, ID_NAMES, path, "id", "--id-column")
            if id_name is not None:
                raw = datasets[id_name][()]
                values = [v.decode() if isinstance(v, bytes) else v for v in raw]
                out.ids = id_strings(pd.Series(values)).to_numpy(dtype=str)
    return out


def _pick(
    names: list[str], wanted: str | None, usual: tuple[str, ...], path: Path, what: str,
    option: str, required: bool = False,
) -> str | None:  # fmt: skip
    if wanted is not None:
        if wanted not in names:
            raise ImportModelError(
                f"{path}: no {what} column {wanted!r} (has: {', '.join(map(str, names))})"
            )
        return wanted
    lower = {str(n).lower().split("/")[-1]: n for n in names}
    found = next((lower[u] for u in usual if u in lower), None)
    if found is None and required:
        raise ImportModelError(
            f"{path}: no {what} column found (looked for {', '.join(usual)}); name it with {option}"
        )
    return found


# -- matching and checks -----------------------------------------------------------------------
def _rows_for_survey(
    req: EmbeddingsRequest, data: VectorFile, survey: Survey
) -> tuple[np.ndarray, list[str]]:
    """File row of each survey object (survey order); every object must have exactly one."""
    path, n_file = data.path, len(data.vectors)
    catalog = survey.catalog
    object_ids = catalog["object_id"].astype(str).to_numpy()
    notes: list[str] = []
    if req.match_radius is not None:
        table = pd.DataFrame({"ra": data.ra, "dec": data.dec, "_row": np.arange(n_file)})
        join = CatalogJoin.by_sky_table(path, table, req.match_radius, "ra", "dec")
        hit, _ = join.match_rows(catalog)
        rows = np.where(hit >= 0, join.table["_row"].to_numpy()[np.maximum(hit, 0)], -1)
        values, counts = np.unique(rows[rows >= 0], return_counts=True)
        shared = values[counts > 1]
        if len(shared):
            owners = object_ids[np.isin(rows, shared)]
            raise ImportModelError(
                f"{path}: {len(shared)} vector(s) are the nearest match of several objects within "
                f'{req.match_radius}" (e.g. objects {_few(owners)}); use a smaller --match-radius or ids'
            )
        what = f'vector within {req.match_radius}"'
    elif data.ids is not None:
        ids = pd.Series(data.ids)
        dupes = ids[ids.duplicated(keep=False) & (ids != "")].unique()
        if len(dupes):
            raise ImportModelError(
                f"{path}: {len(dupes)} id(s) appear more than once (e.g. {_few(dupes)})"
            )
        rows = pd.Index(data.ids).get_indexer(object_ids)
        what = "vector"
        extra = n_file - int((rows >= 0).sum())
        if extra > 0:
            notes.append(
                f"{extra} row(s) of {path.name} are not objects of survey {survey.name}: ignored"
            )
    else:
        if n_file != len(survey):
            raise ImportModelError(
                f"{path}: {n_file} vectors for the {len(survey)} objects of survey {survey.name}; "
                "give ids (--id-column, --ids) or positions (--match-radius) to match them"
            )
        rows = np.arange(n_file)
        what = "vector"
        notes.append(f"no ids in {path.name}: rows taken in survey order")
    missing = object_ids[rows < 0]
    if len(missing):
        raise ImportModelError(
            f"{path}: {len(missing)} of the {len(survey)} objects of survey {survey.name} have no "
            f"{what} (e.g. {_few(missing)})"
        )
    return rows.astype(np.int64), notes


def _check_vectors(
    req: EmbeddingsRequest, data: VectorFile, rows: np.ndarray, survey: Survey, dtype: str
) -> int:
    path, vectors = data.path, data.vectors
    if getattr(vectors, "ndim", 0) != 2 or vectors.shape[1] < 1:
        raise ImportModelError(
            f"{path}: vectors must form a 2-D (objects, dimensions) array, got shape {tuple(np.shape(vectors))}"
        )
    if not np.issubdtype(vectors.dtype, np.number) or np.iscomplexobj(vectors):
        raise ImportModelError(f"{path}: vectors must be real numbers, got dtype {vectors.dtype}")
    dim = int(vectors.shape[1])
    if req.embedding_dim is not None and dim != req.embedding_dim:
        raise ImportModelError(
            f"{path}: vectors have {dim} dimensions, not {req.embedding_dim} (--embedding-dim)"
        )
    ids = survey.catalog["object_id"].astype(str).to_numpy()
    bad: list[np.ndarray] = []
    large: list[np.ndarray] = []
    for lo in range(0, len(rows), CHUNK):
        block = np.asarray(vectors[np.sort(rows[lo : lo + CHUNK])], dtype=np.float32)
        order = np.argsort(rows[lo : lo + CHUNK], kind="stable")
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad.append(lo + order[~finite])
        if dtype == "float16":
            fits = (np.abs(np.where(np.isfinite(block), block, 0)) <= FLOAT16_MAX).all(axis=1)
            large.append(lo + order[~fits])
    if bad:
        where = np.sort(np.concatenate(bad))
        raise ImportModelError(
            f"{path}: {len(where)} vector(s) hold NaN or infinite values (e.g. objects {_few(ids[where])})"
        )
    where = np.sort(np.concatenate(large)) if large else np.zeros(0, np.int64)
    if len(where):
        raise ImportModelError(
            f"{path}: {len(where)} vector(s) hold values beyond float16's range (|x| > "
            f"{FLOAT16_MAX:g}; e.g. objects {_few(ids[where])}); import them with --dtype float32"
        )
    return dim


def _filler(vectors: Any, rows: np.ndarray) -> Any:
    def fill(out: np.ndarray) -> None:
        for lo in range(0, len(rows), CHUNK):
            take = rows[lo : lo + CHUNK]
            order = np.argsort(take, kind="stable")
            block = np.empty((len(take), out.shape[1]), dtype=np.float32)
            block[order] = np.asarray(vectors[take[order]], dtype=np.float32)
            out[lo : lo + len(take)] = block

    return fill


def _few(items: Any, n: int = 3) -> str:
    items = [str(x) for x in list(items)[: n + 1]]
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")
