"""Every error crowdkit raises on purpose.

All of them derive from :class:`CrowdkitError`, so a notebook or the CLI can
catch one type. Each message says what failed and how to fix it.
"""
from __future__ import annotations


class CrowdkitError(Exception):
    """Root of all crowdkit errors."""


class DataNotFoundError(CrowdkitError):
    """A dataset, file or folder crowdkit needs is not where it looked."""


class UnknownBackendError(CrowdkitError, KeyError):
    """A backend name is not in its registry (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class WeightsMissingError(CrowdkitError):
    """A model's weights are not on disk and may not be downloaded."""


class ImageReadError(CrowdkitError):
    """A file could not be decoded as an image."""


class InvalidImageError(CrowdkitError, ValueError):
    """An image array has the wrong type, dtype or shape (RGB ``uint8`` (H, W, 3) expected)."""


class VideoReadError(CrowdkitError):
    """A video could not be opened or decoded."""


class NoFaceError(CrowdkitError):
    """A photo that must show a face (a query photo, say) shows none."""


class AmbiguousFaceError(CrowdkitError):
    """A photo that must show one face shows several."""


class EmptyGalleryError(CrowdkitError):
    """A gallery folder or video holds nothing to search."""


class AnnotationError(CrowdkitError):
    """An annotation file is malformed, hostile or inconsistent with its video."""


class RunFailedError(CrowdkitError):
    """A notebook run failed; the message names the notebook, the cell and the error."""


class RunInterruptedError(CrowdkitError):
    """A run (or a build) was stopped by Ctrl-C or SIGTERM; the message says what was kept."""


class ConfigError(CrowdkitError):
    """A parameter, plan or option is invalid."""


class DatasetFormatError(CrowdkitError):
    """A dataset file (pairs list, label file, file name) does not follow its documented format."""


class LookupTableMismatchError(CrowdkitError):
    """A lookup table was built with a different classifier than the one asked for."""


class VideoWriteError(CrowdkitError):
    """A video could not be written (codec missing, folder not writable, disk full)."""
