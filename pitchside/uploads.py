"""Where uploaded videos live, and how a source or a job names one.

An upload is stored once, under the data folder, as ``<data_dir>/uploads/<id>.video`` (its
metadata in the results store); FFmpeg finds the container from the content, so the name
needs no extension. The gateway writes it; ingest opens it when a stream's source is
``upload:<id>`` (live) or a job analyses it. Both run with the same data folder: one machine,
or a volume they share.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from pitchside.errors import InvalidRequestError

UPLOAD_SCHEME = "upload"  # a source "upload:<id>"
_ID = re.compile(r"^[0-9a-f]{16}$")


def new_id() -> str:
    """A fresh upload or job id: 16 hex digits."""
    return secrets.token_hex(8)


def is_id(value: str) -> bool:
    return bool(_ID.match(value))


def validate_id(value: str, what: str = "upload") -> str:
    """``value`` if it has the shape of an id, else InvalidRequestError (422)."""
    if not is_id(value):
        raise InvalidRequestError(f"{what} ids are 16 hex digits, got {value[:40]!r}")
    return value


def uploads_dir(data_dir: Path) -> Path:
    return data_dir / "uploads"


def upload_path(data_dir: Path, upload_id: str) -> Path:
    """The stored file of upload ``upload_id`` (which must be a valid id)."""
    return uploads_dir(data_dir) / f"{validate_id(upload_id)}.video"


def upload_source(upload_id: str) -> str:
    """The source string that plays upload ``upload_id``."""
    return f"{UPLOAD_SCHEME}:{upload_id}"


def upload_of_source(source: str) -> str | None:
    """The upload id a source names (``upload:<id>``), or None for any other source."""
    scheme, sep, rest = source.partition(":")
    if sep and scheme.lower() == UPLOAD_SCHEME and not rest.startswith("//"):
        return rest
    return None


def job_sid(job_id: str) -> str:
    """The stream that carries the frames of analysis job ``job_id``."""
    return f"job-{job_id}"


def jobs_dir(data_dir: Path, job_id: str) -> Path:
    """Where a job's rendered files (the annotated video) are kept."""
    return data_dir / "jobs" / validate_id(job_id, "job")
