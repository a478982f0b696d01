"""The error for a bad input from the user: a file, a setting, a model directory, a run name.

Loaders raise `InputError` (or its kinds, `ConfigError` and `DataError`) naming what is at
fault; `posttrain`'s entry point prints it as one line, `error: FILE:LINE: KEY: what`, and
exits with status 2 instead of showing a traceback. It is a ValueError, so library callers
that already catch ValueError keep working.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A user's input that cannot be used. `str()` is one line: the file (or the option), then
    the line and the key where known, then what is wrong."""

    def __init__(
        self,
        detail: str,
        path: str | Path | None = None,
        *,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.detail = " ".join(str(detail).split())  # one line, whatever a parser said
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key
        where = (self.path or "") + (f":{line}" if self.path and line is not None else "")
        super().__init__(": ".join(p for p in (where, key, self.detail) if p))


def not_utf8(
    path: str | Path,
    data: bytes,
    err: UnicodeDecodeError,
    kind: type[InputError] = InputError,
    first_line: int = 1,
) -> InputError:
    """The error for `data` read from `path` (from line `first_line` on) that is not UTF-8:
    the line and column of its first bad byte."""
    line = first_line + data.count(b"\n", 0, err.start)
    column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
    byte = data[err.start : err.start + 1].hex()
    return kind(
        f"not UTF-8 text (byte 0x{byte} at column {column}); save the file as UTF-8",
        path,
        line=line,
    )
