"""Checks of option values the training commands share, made before any slow work."""

from __future__ import annotations

from pathlib import Path

from pitchside.errors import SettingsError


def check_output_file(path: Path | None, option: str) -> None:
    """Fail now, not after minutes of work, when the file ``option`` names cannot be written.

    Raises:
        SettingsError: ``path`` is a folder, or the folder it would go in does not exist.
    """
    if path is None:
        return
    if path.is_dir():
        raise SettingsError(f"{option} {path} is a folder; give the name of a file to write")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise SettingsError(f"{option} {path}: the folder {folder} does not exist")
