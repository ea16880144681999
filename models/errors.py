"""Exceptions raised by the models package (all are ``ValueError`` subclasses)."""

from __future__ import annotations

from collections.abc import Sequence


class ModelError(ValueError):
    """A model was given input or configuration it cannot use."""


class InputShapeError(ModelError):
    """Input has the wrong number of dimensions, image size or feature size."""


class BandMismatchError(ModelError):
    """Input bands differ from the bands a model was trained on.

    ``expected`` holds the model's band names; ``got`` the input's band names, or its channel
    count when the input carries no names.
    """

    def __init__(self, expected: Sequence[str], got: Sequence[str] | int) -> None:
        self.expected = [str(b) for b in expected]
        self.got: list[str] | int = got if isinstance(got, int) else [str(b) for b in got]
        want = f"{len(self.expected)} bands ({', '.join(self.expected)})"
        if isinstance(self.got, int):
            have = f"{self.got}-band input"
        else:
            have = f"{len(self.got)}-band input ({', '.join(self.got)})"
        super().__init__(
            f"model trained for {want} got {have}; select or reorder the input bands to "
            f"{self.expected} or use a model trained on these bands"
        )


def band_indices(model_bands: Sequence[str], data_bands: Sequence[str]) -> list[int]:
    """Channel indices that pick ``model_bands`` (in the model's order) out of ``data_bands``.

    Raises :class:`BandMismatchError` when a model band is missing from the data.
    """
    data = [str(b) for b in data_bands]
    missing = [b for b in model_bands if str(b) not in data]
    if missing:
        raise BandMismatchError(model_bands, data)
    return [data.index(str(b)) for b in model_bands]
