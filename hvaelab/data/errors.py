"""The data package's error types: one per way that getting images can fail."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DataFormatError(ValueError):
    """A data file is truncated, corrupt or not in the expected format."""


class ChecksumError(ValueError):
    """A local or downloaded file does not match its known md5 checksum."""


class InvalidInputError(ValueError, TypeError):
    """Images (files, uploads, arrays, tensors) that cannot be a model's inputs: unreadable,
    wrong type, dtype, shape or range, or NaN. The one error type of bad inputs, from the
    data package and from the model's input door (:mod:`hvaelab.model.inputs`); a
    ``ValueError`` and a ``TypeError`` both, so code catching either sees it."""


class UnknownDatasetError(ValueError):
    """A dataset name or split that is not registered."""


@dataclass
class Remedy:
    """One way to get a dataset's files: a command to run, or a thing to do."""

    text: str
    command: str = ""


class DataNotFoundError(FileNotFoundError):
    """A dataset's files were found nowhere and could not be downloaded.

    ``str(e)`` lists every place looked, in order, and every way to get the files;
    :meth:`short` says the same in one line (for command-line errors).
    """

    def __init__(
        self,
        dataset: str,
        split: str,
        names: list[str],
        places: list[tuple[Path, str]],
        download_note: str,
        remedies: list[Remedy] | None = None,
    ) -> None:
        self.dataset, self.split, self.names = dataset, split, list(names)
        self.places, self.download_note = list(places), download_note
        self.remedies = list(remedies or [])
        super().__init__(self._long())

    def _long(self) -> str:
        lines = [
            f"Could not find dataset '{self.dataset}' split '{self.split}': "
            f"{', '.join(self.names)}.",
            "Looked in, in this order:",
            *(f"  {i}. {d}  [{why}]" for i, (d, why) in enumerate(self.places, 1)),
            f"Download: {self.download_note}.",
            "To provide the files, do one of:",
            *(f"  - {r.text}" for r in self.remedies),
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._long()

    def short(self) -> str:
        """One line: what is missing, how many places were looked in, the command that gets it."""
        cmd = next((r.command for r in self.remedies if r.command), "")
        get = f"get it with `{cmd}`" if cmd else "provide the files (see `hvaelab data list`)"
        return (
            f"dataset '{self.dataset}' split '{self.split}' not found in {len(self.places)} "
            f"places (`hvaelab data list` shows them; download: {self.download_note}); {get}"
        )
