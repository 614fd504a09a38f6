"""The one exception hierarchy of pitchside.

Every error a user can cause derives from :class:`PitchsideError` and carries the HTTP status
the gateway answers with, so a handler never has to guess. Messages say what was expected and
what was given; they never contain credentials.
"""

from __future__ import annotations


class PitchsideError(Exception):
    """Base of every error pitchside raises on purpose."""

    status: int = 500
    code: str = "internal_error"


class SettingsError(PitchsideError):
    """An environment variable holds a value pitchside cannot use."""

    code = "bad_setting"


class SchemaError(PitchsideError):
    """A bus message is malformed or of another schema version."""

    code = "bad_message"


class ModelError(PitchsideError):
    """The model file is missing, unreadable, or not a detection model."""

    code = "bad_model"


class SourceError(PitchsideError):
    """A source cannot be opened or decoded (missing file, not a video, dead camera)."""

    status = 422
    code = "bad_source"


class InvalidRequestError(PitchsideError):
    """A request is well formed but its values are not acceptable."""

    status = 422
    code = "invalid_request"


class StreamNotFoundError(PitchsideError):
    """No stream with this id is known."""

    status = 404
    code = "stream_not_found"


class StreamExistsError(PitchsideError):
    """A stream with this id is already running."""

    status = 409
    code = "stream_exists"


class IngestUnavailableError(PitchsideError):
    """No ingest service answered a control command in time."""

    status = 503
    code = "ingest_unavailable"
