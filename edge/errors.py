"""Errors that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class EdgeError(Exception):
    """A user-facing error: the message says what went wrong and what to do."""

    exit_code = 2


class MissingDependency(EdgeError):
    """A format or backend needs a package that is not installed."""

    def __init__(self, package: str, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the Python package '{package}', which is not installed: "
            f"pip install 'edge[{extra}]'"
        )
        self.package = package
        self.extra = extra


class InputError(EdgeError):
    """Input data has the wrong shape, dtype or values."""
