"""Uploaded query cutouts: size and type checks, reading through the backend, a preview."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import numpy as np

from backend.latent.errors import LatentError
from backend.latent.images import read_image_file, validate_cutouts
from backend.survey.meta import SurveyMeta
from backend.survey.render import default_display, png_bytes, to_rgb

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".png", ".jpg", ".jpeg", ".npy")
ACCEPT = ",".join(SUFFIXES)


def _suffix(filename: str) -> str:
    name = (filename or "").lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise LatentError(
        f"{filename or 'the file'}: unsupported type; upload a FITS cutout (C, H, W), a PNG/JPEG "
        "or a .npy array"
    )


def user_message(message: str, path: Path, filename: str) -> str:
    """``message`` about the server's copy ``path`` of an upload, about the user's file
    ``filename`` instead (the temporary folder never shows; the name is the user's text)."""
    name = Path(filename or "the file").name or "the file"
    for where in (str(path), path.name, str(path.parent)):
        message = message.replace(where, name)
    return message if message.startswith(name) else f"{name}: {message}"


def read_upload(
    content: bytes | None, filename: str, meta: SurveyMeta, fill_nonfinite: bool = False
) -> np.ndarray:
    """(1, C, H, W) float32 cutout from an uploaded file, checked against the survey (bands,
    size, NaN/inf pixels); :class:`LatentError` with a clear message otherwise."""
    if not content:
        raise LatentError("no file uploaded yet: choose a FITS, PNG or .npy cutout first")
    if len(content) > MAX_UPLOAD_BYTES:
        raise LatentError(
            f"{filename}: {len(content) / 2**20:.1f} MB is too large "
            f"(limit {MAX_UPLOAD_BYTES // 2**20} MB for one cutout)"
        )
    suffix = _suffix(filename)
    with tempfile.TemporaryDirectory(prefix="latentsky-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"  # never the user's file name: no path tricks
        path.write_bytes(content)
        try:
            image = read_image_file(path, meta)
        except LatentError as exc:  # it names the server's temporary file: name the user's
            raise LatentError(user_message(str(exc), path, filename)) from None
    try:
        return validate_cutouts(image, meta, "fill" if fill_nonfinite else "error")
    except LatentError as exc:
        raise LatentError(f"{filename}: {exc}") from None


def preview_uri(cutout: np.ndarray, meta: SurveyMeta, size: int = 96) -> str:
    """A data: URI PNG of a (C, H, W) cutout with the survey's display settings."""
    display = meta.display or default_display(list(meta.bands))
    picture = to_rgb(np.asarray(cutout), list(meta.bands), display)
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture, size)).decode()


def ood_note(encoder: str | None, vectors: np.ndarray, filename: str) -> str:
    """HTML warning when an uploaded cutout's embedding is unlike the encoder's training data
    ('' when alike, or when the encoder has no OOD reference yet)."""
    from app.ood import upload_note
    from backend.errors import LatentSkyError
    from backend.latent import ood
    from backend.latent.ood_product import reference_for
    from backend.registry import ModelRegistry

    if not encoder:
        return ""
    try:
        reference = reference_for(ModelRegistry().get("encoder", encoder))
    except LatentSkyError:  # e.g. its training survey not embedded yet: no warning to give
        return ""
    return upload_note(ood.score(reference, vectors), reference.threshold, filename)
