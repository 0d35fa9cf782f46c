"""Reading designs from disk: `.gab` specs and `.json` designs, files or folders."""

from __future__ import annotations

import os
from pathlib import Path

from .. import ir
from .diagnostics import Diagnostic, DSLError
from .json_form import loads
from .parse import parse, read_text

SPEC_SUFFIXES = (".gab", ".json")


class InputError(OSError):
    """A path that cannot be read: missing, a folder with no specs, unreadable."""


def find_specs(paths: list[str | os.PathLike], suffixes: tuple[str, ...] = SPEC_SUFFIXES) -> list[Path]:
    """Expand folders into the spec files they contain (sorted); keep files as given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix in suffixes and p.is_file())
            if not inside:
                raise InputError(f"{path}: folder contains no {' or '.join(suffixes)} files")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        elif path.exists():
            raise InputError(f"{path}: not a regular file")
        else:
            raise InputError(f"{path}: no such file or folder")
    return found


def read_design(path: str | os.PathLike) -> ir.Design:
    """A design from a `.gab` or `.json` file; DSLError for bad content, InputError for bad paths."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DSLError([Diagnostic(code="encoding", message="file is not valid UTF-8", file=str(path),
                                           line=1, column=1, end_line=1, end_column=2)]) from None
            return loads(text, filename=str(path))
        return parse(read_text(path), filename=str(path))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise InputError(f"{path}: {err.strerror.lower() if err.strerror else err}") from None
