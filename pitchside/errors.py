"""The one exception hierarchy of pitchside, and the exit statuses of its commands.

Every error pitchside raises on purpose derives from :class:`PitchsideError` and carries the
HTTP status the gateway answers with and the exit status a command ends with, so neither a
handler nor a ``__main__`` has to guess. Messages say what was expected and what was given;
they never contain credentials.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a pitchside process ends. The supervisor of ``pitchside up`` restarts only FAILED."""

    OK = 0
    FAILED = 1  # something went wrong that a retry or a restart may fix
    USAGE = 2  # a bad setting, option, model or data set: a restart cannot help
    INTERRUPTED = 130  # Ctrl-C at a command that does not handle it itself


class PitchsideError(Exception):
    """Base of every error pitchside raises on purpose: by default a user's mistake."""

    status: int = 500
    code: str = "internal_error"
    exit_code: ExitCode = ExitCode.USAGE


# -- settings, options, commands -------------------------------------------------------------


class SettingsError(PitchsideError):
    """An environment variable or option holds a value pitchside cannot use."""

    code = "bad_setting"


class CommandUnavailableError(PitchsideError):
    """A command's module cannot be imported (a missing extra) or lacks add_arguments/run."""

    code = "command_unavailable"


class InvalidRequestError(PitchsideError):
    """A request is well formed but its values are not acceptable."""

    status = 422
    code = "invalid_request"


class OfferError(InvalidRequestError):
    """A WebRTC publisher's SDP offer is malformed or sends no video we can decode."""

    status = 400
    code = "bad_offer"


class ForbiddenError(PitchsideError):
    """The operator turned off what the request asks for."""

    status = 403
    code = "forbidden"


class UnauthorizedError(PitchsideError):
    """A request to a gateway that asks for a token came without a valid one."""

    status = 401
    code = "unauthorized"


class ReadOnlyError(ForbiddenError):
    """A viewer (read-only) token asked to change something: only the operator's may."""

    code = "read_only"


class OriginNotAllowedError(ForbiddenError):
    """A browser page of a foreign origin asked for what only the gateway's own pages may."""

    code = "origin_not_allowed"


class DatasetError(InvalidRequestError):
    """A training or evaluation data set is missing, unreadable or not YOLO-format."""

    code = "bad_dataset"


class MalformedBodyError(PitchsideError):
    """A request body cannot be parsed at all (a multipart body without its boundary...)."""

    status = 400
    code = "malformed_body"


class ContentTooLargeError(PitchsideError):
    """A request body is larger than the gateway accepts."""

    status = 413
    code = "content_too_large"


class UnsupportedMediaError(PitchsideError):
    """A request or an uploaded file is of a media type the endpoint does not take."""

    status = 415
    code = "unsupported_media_type"


# -- image predictions and the results store -------------------------------------------------


class ImageTooLargeError(ContentTooLargeError):
    """An image has more pixels than ``PITCHSIDE_PREDICT_MAX_PIXELS``."""

    code = "image_too_large"


class BadImageError(InvalidRequestError):
    """A file says it is a JPEG, PNG or WebP image but cannot be decoded as one."""

    code = "bad_image"


class BadVideoError(InvalidRequestError):
    """An upload is not a video PyAV can read to its end: no video stream, undecodable, or
    truncated."""

    code = "bad_video"


class UploadNotFoundError(PitchsideError):
    """No upload with this id is in the results store."""

    status = 404
    code = "upload_not_found"


class UploadInUseError(PitchsideError):
    """An upload cannot be deleted while an analysis job of it runs."""

    status = 409
    code = "upload_in_use"


class JobFinishedError(PitchsideError):
    """A job that has ended cannot be cancelled, or its results are not there yet."""

    status = 409
    code = "job_conflict"


class PredictionNotFoundError(PitchsideError):
    """No prediction with this id is in the results store."""

    status = 404
    code = "prediction_not_found"


class JobNotFoundError(PitchsideError):
    """No analysis job with this id is in the results store."""

    status = 404
    code = "job_not_found"


class ResultsStoreError(PitchsideError):
    """The results database cannot be reached, migrated or written; never names a password."""

    status = 503
    code = "results_store_unavailable"
    exit_code = ExitCode.FAILED


class PredictorBusyError(PitchsideError):
    """As many images as the gateway holds at once are being predicted: try again shortly."""

    status = 503
    code = "predictor_busy"
    exit_code = ExitCode.FAILED


class ModelUnavailableError(PitchsideError):
    """The gateway cannot load the detector it predicts images with (see the log)."""

    status = 503
    code = "model_unavailable"
    exit_code = ExitCode.FAILED


# -- models and evaluation ---------------------------------------------------------------------


class ModelError(PitchsideError):
    """The model file is missing, unreadable, or not a detection model."""

    code = "bad_model"


class ModelNotFoundError(ModelError):
    """A registry URI names a model, alias or version the registry does not have."""

    code = "model_not_found"


class EvaluationError(PitchsideError):
    """Two evaluations cannot be compared (scored on different held-out splits)."""

    status = 422
    code = "evaluation_mismatch"


class BenchError(PitchsideError):
    """A benchmark section cannot run; the message says why."""

    code = "bench_failed"
    exit_code = ExitCode.FAILED


# -- the bus and the streams -----------------------------------------------------------------


class SchemaError(PitchsideError):
    """A bus message is malformed or of another schema version."""

    code = "bad_message"
    exit_code = ExitCode.FAILED


class ServiceError(PitchsideError):
    """A service could not start (its port is taken...) and has logged why."""

    code = "service_failed"
    exit_code = ExitCode.FAILED


class EmbeddedRedisError(PitchsideError):
    """The embedded redis-server could not be started."""

    code = "embedded_redis"
    exit_code = ExitCode.FAILED


class SourceError(PitchsideError):
    """A source cannot be opened or decoded (missing file, not a video, dead camera).

    ``retryable`` says whether opening it again may help: a camera that does not answer or
    dropped out may come back; a wrong path, wrong credentials or a file that is not a video
    will not.
    """

    status = 422
    code = "bad_source"
    retryable = False


class SourceUnavailableError(SourceError):
    """A network source did not answer, refused, or dropped out: it may come back."""

    code = "source_unavailable"
    retryable = True


class NoFramesError(SourceUnavailableError):
    """The watchdog fired: an open source delivered no frame for too long."""

    code = "no_frames"


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
    exit_code = ExitCode.FAILED


class IngestRefusedError(PitchsideError):
    """Ingest answered a command with an error: carries the status and code it asked for."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
