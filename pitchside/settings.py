"""One typed settings object, read once from the environment and passed down.

Nothing below ``__main__`` reads ``os.environ``: build :class:`Settings` with
:meth:`Settings.from_env` at start-up and hand it to every service. Each bad value raises a
:class:`~pitchside.errors.SettingsError` naming the variable, what it expects and what it got.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pitchside.errors import SettingsError
from pitchside.redact import redact_url

T = TypeVar("T")

#: Where the project's own default detector lives (see models/MODEL_CARD.md).
REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "pitchside-football.onnx"
DEFAULT_CLASSIFIER_NAME = "ball-classifier.onnx"  # models/BALL_CLASSIFIER.md


def auth_headers(settings: Settings) -> dict[str, str]:
    """The headers a client of the gateway sends: ``Authorization: Bearer`` with the
    operator's token (``PITCHSIDE_TOKEN`` or its file) when one is set, else none."""
    return {"Authorization": f"Bearer {settings.token}"} if settings.token else {}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_model_path() -> Path:
    """The detector ``pitchside up`` serves when ``PITCHSIDE_MODEL`` is unset."""
    return REPO_MODELS_DIR / DEFAULT_MODEL_NAME


def default_classifier_path() -> Path:
    """The ball-type classifier ``POST /api/classify`` serves when ``PITCHSIDE_CLASSIFIER``
    is unset."""
    return REPO_MODELS_DIR / DEFAULT_CLASSIFIER_NAME


RTSP_TRANSPORTS = ("tcp", "udp")
#: What a source given to the API may be: URL schemes, ``file`` for a path in the media
#: folder, ``device`` for a local camera (/dev/videoN), ``whip`` for WebRTC publishers.
#: ``upload`` for a video uploaded to the gateway (``upload:<id>``).
SOURCE_SCHEMES = ("file", "rtsp", "rtsps", "http", "https", "device", "whip", "upload")


def check_imgsz(value: int, name: str = "PITCHSIDE_IMGSZ") -> int:
    """``value`` when it is a network input side YOLO accepts: a multiple of 32, 32-4096.

    Raises:
        SettingsError: naming ``name`` (the variable or option) and the value given.
    """
    if not 32 <= value <= 4096 or value % 32:
        raise SettingsError(f"{name} must be a multiple of 32 between 32 and 4096, got {value}")
    return value


def imgsz_arg(raw: str) -> int:
    """An argparse ``type=`` for ``--imgsz``: the same rule as ``PITCHSIDE_IMGSZ``."""
    try:
        return check_imgsz(int(raw), "--imgsz")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {raw!r}") from None
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--imgsz ")) from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service. Field docs name the environment variable that sets it."""

    # Bus
    redis_url: str | None = None  # REDIS_URL; None starts the embedded redis-server
    frames_maxlen: int = 50  # PITCHSIDE_FRAMES_MAXLEN; about 2 s of 25 fps video
    dets_maxlen: int = 500  # PITCHSIDE_DETS_MAXLEN
    data_dir: Path = Path(".pitchside")  # PITCHSIDE_DATA_DIR; embedded Redis, uploads, runs

    # Gateway
    host: str = "127.0.0.1"  # PITCHSIDE_HOST
    port: int = 8000  # PITCHSIDE_PORT
    ws_queue: int = 4  # PITCHSIDE_WS_QUEUE; messages buffered per viewer before the oldest go
    control_timeout_s: float = 10.0  # PITCHSIDE_CONTROL_TIMEOUT_S; wait for ingest's answer
    predict_max_mb: int = 50  # PITCHSIDE_PREDICT_MAX_MB; POST /api/predict body, MiB
    predict_max_pixels: int = 40_000_000  # PITCHSIDE_PREDICT_MAX_PIXELS; width x height
    upload_max_mb: int = 4096  # PITCHSIDE_UPLOAD_MAX_MB; POST /api/uploads body, MiB

    # Ingest
    jpeg_quality: int = 80  # PITCHSIDE_JPEG_QUALITY (1-100)
    max_width: int | None = None  # PITCHSIDE_MAX_WIDTH; frames wider than this are downscaled
    analyse_max_lag: int = 16  # PITCHSIDE_ANALYSE_MAX_LAG; analyse mode waits above this lag
    watchdog_s: float = 5.0  # PITCHSIDE_WATCHDOG_S; no frame this long: reconnect (a camera)
    source_timeout_s: float = 5.0  # PITCHSIDE_SOURCE_TIMEOUT_S; network open and read timeout
    reconnect_initial_s: float = 0.5  # PITCHSIDE_RECONNECT_INITIAL_S; first backoff
    reconnect_max_s: float = 10.0  # PITCHSIDE_RECONNECT_MAX_S; the backoff's cap
    rtsp_transport: str = "tcp"  # PITCHSIDE_RTSP_TRANSPORT; tcp or udp, per stream too
    source_schemes: tuple[str, ...] = SOURCE_SCHEMES  # PITCHSIDE_SOURCE_SCHEMES; what may open
    media_dir: Path | None = None  # PITCHSIDE_MEDIA_DIR; None: <data_dir>/media
    media_allow: tuple[str, ...] = ()  # PITCHSIDE_MEDIA_ALLOW; files allowed besides the folder
    ice_servers: tuple[str, ...] = ()  # PITCHSIDE_ICE_SERVERS; stun:/turn: URLs for WHIP peers
    ice_username: str | None = None  # PITCHSIDE_ICE_USERNAME; for the turn: servers
    ice_credential: str | None = None  # PITCHSIDE_ICE_CREDENTIAL; for the turn: servers
    ice_addresses: tuple[str, ...] = ()  # PITCHSIDE_ICE_ADDRESSES; () every non-loopback one

    # Workers
    model: str | None = None  # PITCHSIDE_MODEL; None serves models/pitchside-football.onnx
    # PITCHSIDE_CLASSIFIER; the gateway's /api/classify. None: models/ball-classifier.onnx
    classifier: str | None = None
    workers: int = 1  # PITCHSIDE_WORKERS; worker processes started by `pitchside up`
    conf: float = 0.25  # PITCHSIDE_CONF
    iou: float = 0.45  # PITCHSIDE_IOU
    imgsz: int = 640  # PITCHSIDE_IMGSZ; long side of the network input
    batch_max: int = 4  # PITCHSIDE_BATCH; frames per inference batch at most
    batch_timeout_ms: float = 5.0  # PITCHSIDE_BATCH_MS; wait this long to fill a batch
    providers: str = "auto"  # PITCHSIDE_PROVIDERS; "auto" or a comma list of ORT providers
    lanes: int = 2  # PITCHSIDE_LANES; analyse batches one worker infers at the same time
    threads: int = 0  # PITCHSIDE_THREADS; inference threads of one worker, 0: the usable cores
    model_poll_s: float = 5.0  # PITCHSIDE_MODEL_POLL_S; how often a registry alias is re-read
    claim_idle_ms: int = 30_000  # PITCHSIDE_CLAIM_IDLE_MS; pending entries idle this long

    # Tracker
    trackers: int = 1  # PITCHSIDE_TRACKERS; tracker processes started by `pitchside up`
    tracker_lease_s: float = 3.0  # PITCHSIDE_TRACKER_LEASE_S; a dead owner's streams wait this
    tracker_wait_ms: float = 80.0  # PITCHSIDE_TRACKER_WAIT_MS; live: longest wait for a frame
    tracker_analyse_wait_s: float = 45.0  # PITCHSIDE_TRACKER_ANALYSE_WAIT_S; analyse: the same

    # Results store
    # DATABASE_URL; None: SQLite <data_dir>/results.db. Not in repr(): it may hold a password.
    database_url: str | None = dataclasses.field(default=None, repr=False)

    # Training
    mlflow_tracking_uri: str | None = None  # MLFLOW_TRACKING_URI; None: sqlite under data_dir

    # Metrics
    metrics_host: str = "127.0.0.1"  # PITCHSIDE_METRICS_HOST; ingest's and workers' /metrics
    metrics_port: int = 0  # PITCHSIDE_METRICS_PORT; 0: a free port the OS picks
    health_url: str | None = None  # PITCHSIDE_HEALTH_URL; what `pitchside healthcheck` asks
    metrics_max_streams: int = 100  # PITCHSIDE_METRICS_MAX_STREAMS; the rest: stream="other"
    grafana_url: str | None = None  # PITCHSIDE_GRAFANA_URL; the viewer links there; None: no link

    # Access control (gateway/auth.py). Tokens are not in repr(): they must never reach a log.
    token: str | None = dataclasses.field(default=None, repr=False)  # PITCHSIDE_TOKEN(_FILE)
    viewer_token: str | None = dataclasses.field(default=None, repr=False)  # ..._VIEWER_TOKEN
    session_ttl_s: float = 3600.0  # PITCHSIDE_SESSION_TTL_S; a browser session cookie's life
    cors_origins: tuple[str, ...] = ()  # PITCHSIDE_CORS_ORIGINS; () sends no CORS header
    ws_origins: tuple[str, ...] | None = None  # PITCHSIDE_WS_ORIGINS; None: the CORS origins
    metrics_auth: bool = False  # PITCHSIDE_METRICS_AUTH; /metrics needs a token too
    health_auth: bool = False  # PITCHSIDE_HEALTH_AUTH; /healthz and /readyz need a token too

    # Logging
    log_level: str = "INFO"  # PITCHSIDE_LOG_LEVEL
    log_json: bool = False  # PITCHSIDE_LOG_JSON

    @property
    def auth_enabled(self) -> bool:
        """Whether the gateway asks for a token (``PITCHSIDE_TOKEN`` or its file is set)."""
        return self.token is not None

    @property
    def websocket_origins(self) -> tuple[str, ...]:
        """Foreign origins whose pages may open a viewer WebSocket (besides the gateway's own)."""
        return self.cors_origins if self.ws_origins is None else self.ws_origins

    @property
    def model_uri(self) -> str:
        """The model to serve: ``PITCHSIDE_MODEL`` or the project's default detector."""
        return self.model or str(default_model_path())

    @property
    def classifier_uri(self) -> str:
        """The classifier to serve: ``PITCHSIDE_CLASSIFIER`` or the project's default."""
        return self.classifier or str(default_classifier_path())

    @property
    def media_root(self) -> Path:
        """The folder local files given to the API must be in (``PITCHSIDE_MEDIA_DIR``)."""
        return self.media_dir or self.data_dir / "media"

    @property
    def results_url(self) -> str:
        """The results store: ``DATABASE_URL`` or a SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'results.db').resolve()}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking store: ``MLFLOW_TRACKING_URI`` or a sqlite file in the data dir."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    def threads_per_session(self, lanes: int = 1) -> int:
        """ONNX Runtime intra-op threads for a session ``lanes`` callers share at once.

        ``threads`` (or every usable core) shared out among the lanes, at least one each:
        on a few CPU cores two single-threaded inferences side by side get more frames
        through than one inference on two threads, whose threads wait for each other at
        every layer (see ``pitchside bench``).
        """
        return max(1, (self.threads or usable_cores()) // lanes)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings are immutable)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every setting from ``env`` (the process environment, passed in by the
        entry point), validating each.

        Raises:
            SettingsError: a variable holds a value of the wrong type or out of range.
        """
        r = _Reader(env)
        settings = cls(
            redis_url=env.get("REDIS_URL") or None,
            frames_maxlen=r.get("PITCHSIDE_FRAMES_MAXLEN", int, 50, lo=2),
            dets_maxlen=r.get("PITCHSIDE_DETS_MAXLEN", int, 500, lo=2),
            data_dir=Path(env.get("PITCHSIDE_DATA_DIR") or ".pitchside"),
            host=env.get("PITCHSIDE_HOST") or "127.0.0.1",
            port=r.get("PITCHSIDE_PORT", int, 8000, lo=0, hi=65535),
            ws_queue=r.get("PITCHSIDE_WS_QUEUE", int, 4, lo=1, hi=1000),
            control_timeout_s=r.get("PITCHSIDE_CONTROL_TIMEOUT_S", float, 10.0, lo=0.1),
            predict_max_mb=r.get("PITCHSIDE_PREDICT_MAX_MB", int, 50, lo=1, hi=4096),
            predict_max_pixels=r.get(
                "PITCHSIDE_PREDICT_MAX_PIXELS", int, 40_000_000, lo=1, hi=1_000_000_000
            ),
            upload_max_mb=r.get("PITCHSIDE_UPLOAD_MAX_MB", int, 4096, lo=1, hi=1_048_576),
            jpeg_quality=r.get("PITCHSIDE_JPEG_QUALITY", int, 80, lo=1, hi=100),
            max_width=r.get("PITCHSIDE_MAX_WIDTH", int, 0, lo=0) or None,
            analyse_max_lag=r.get("PITCHSIDE_ANALYSE_MAX_LAG", int, 16, lo=1),
            watchdog_s=r.get("PITCHSIDE_WATCHDOG_S", float, 5.0, lo=0.1, hi=3600.0),
            source_timeout_s=r.get("PITCHSIDE_SOURCE_TIMEOUT_S", float, 5.0, lo=0.1, hi=600.0),
            reconnect_initial_s=r.get("PITCHSIDE_RECONNECT_INITIAL_S", float, 0.5, lo=0.01),
            reconnect_max_s=r.get("PITCHSIDE_RECONNECT_MAX_S", float, 10.0, lo=0.01, hi=3600.0),
            rtsp_transport=r.choice("PITCHSIDE_RTSP_TRANSPORT", RTSP_TRANSPORTS, "tcp"),
            source_schemes=r.choices("PITCHSIDE_SOURCE_SCHEMES", SOURCE_SCHEMES),
            media_dir=Path(env["PITCHSIDE_MEDIA_DIR"]) if env.get("PITCHSIDE_MEDIA_DIR") else None,
            media_allow=tuple(
                p for p in env.get("PITCHSIDE_MEDIA_ALLOW", "").split(os.pathsep) if p
            ),
            ice_servers=_ice_servers(env.get("PITCHSIDE_ICE_SERVERS", "")),
            ice_username=env.get("PITCHSIDE_ICE_USERNAME") or None,
            ice_credential=env.get("PITCHSIDE_ICE_CREDENTIAL") or None,
            ice_addresses=_ice_addresses(env.get("PITCHSIDE_ICE_ADDRESSES", "")),
            model=env.get("PITCHSIDE_MODEL") or None,
            classifier=env.get("PITCHSIDE_CLASSIFIER") or None,
            workers=r.get("PITCHSIDE_WORKERS", int, 1, lo=0, hi=256),
            conf=r.get("PITCHSIDE_CONF", float, 0.25, lo=0.0, hi=1.0),
            iou=r.get("PITCHSIDE_IOU", float, 0.45, lo=0.0, hi=1.0),
            imgsz=check_imgsz(r.get("PITCHSIDE_IMGSZ", int, 640)),
            batch_max=r.get("PITCHSIDE_BATCH", int, 4, lo=1, hi=256),
            batch_timeout_ms=r.get("PITCHSIDE_BATCH_MS", float, 5.0, lo=0.0, hi=10_000.0),
            providers=env.get("PITCHSIDE_PROVIDERS") or "auto",
            lanes=r.get("PITCHSIDE_LANES", int, 2, lo=1, hi=64),
            threads=r.get("PITCHSIDE_THREADS", int, 0, lo=0, hi=256),
            model_poll_s=r.get("PITCHSIDE_MODEL_POLL_S", float, 5.0, lo=0.1),
            claim_idle_ms=r.get("PITCHSIDE_CLAIM_IDLE_MS", int, 30_000, lo=100),
            trackers=r.get("PITCHSIDE_TRACKERS", int, 1, lo=0, hi=64),
            tracker_lease_s=r.get("PITCHSIDE_TRACKER_LEASE_S", float, 3.0, lo=0.3, hi=600.0),
            tracker_wait_ms=r.get("PITCHSIDE_TRACKER_WAIT_MS", float, 80.0, lo=0.0, hi=10_000.0),
            tracker_analyse_wait_s=r.get(
                "PITCHSIDE_TRACKER_ANALYSE_WAIT_S", float, 45.0, lo=0.0, hi=3600.0
            ),
            database_url=_database_url(env.get("DATABASE_URL", "")),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            metrics_host=env.get("PITCHSIDE_METRICS_HOST") or "127.0.0.1",
            metrics_port=r.get("PITCHSIDE_METRICS_PORT", int, 0, lo=0, hi=65535),
            health_url=env.get("PITCHSIDE_HEALTH_URL") or None,
            metrics_max_streams=r.get("PITCHSIDE_METRICS_MAX_STREAMS", int, 100, lo=0, hi=100_000),
            grafana_url=_grafana_url(env.get("PITCHSIDE_GRAFANA_URL", "")),
            token=_token(env, "PITCHSIDE_TOKEN"),
            viewer_token=_token(env, "PITCHSIDE_VIEWER_TOKEN"),
            session_ttl_s=r.get("PITCHSIDE_SESSION_TTL_S", float, 3600.0, lo=10.0, hi=604_800.0),
            cors_origins=_origins(env.get("PITCHSIDE_CORS_ORIGINS", ""), "PITCHSIDE_CORS_ORIGINS"),
            ws_origins=(
                _origins(env["PITCHSIDE_WS_ORIGINS"], "PITCHSIDE_WS_ORIGINS")
                if env.get("PITCHSIDE_WS_ORIGINS", "").strip()
                else None
            ),
            metrics_auth=r.get("PITCHSIDE_METRICS_AUTH", _parse_bool, False),
            health_auth=r.get("PITCHSIDE_HEALTH_AUTH", _parse_bool, False),
            log_level=r.choice(
                "PITCHSIDE_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"
            ),
            log_json=r.get("PITCHSIDE_LOG_JSON", _parse_bool, False),
        )
        if settings.reconnect_initial_s > settings.reconnect_max_s:
            raise SettingsError(
                "PITCHSIDE_RECONNECT_INITIAL_S must not exceed PITCHSIDE_RECONNECT_MAX_S, got "
                f"{settings.reconnect_initial_s:g} and {settings.reconnect_max_s:g}"
            )
        _check_access(settings)
        return settings


ICE_SCHEMES = ("stun", "stuns", "turn", "turns")
#: What DATABASE_URL may name: SQLite (the standard library's driver) or PostgreSQL through
#: psycopg 3; a bare ``postgresql://`` or ``postgres://`` is taken to mean psycopg.
DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def _database_url(raw: str) -> str | None:
    """``DATABASE_URL``: a SQLAlchemy URL of SQLite or PostgreSQL (psycopg), or unset."""
    url = raw.strip()
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    driver = DATABASE_SCHEMES.get(scheme.lower())
    if not sep or driver is None or not rest:
        given = f"{redact_url(url)!r}" if sep else "a value that is no URL"
        raise SettingsError(
            "DATABASE_URL must be a sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB "
            f"URL, got {given}"
        )  # redacted, or not echoed: the value may hold a password
    return f"{driver}://{rest}"


def _grafana_url(raw: str) -> str | None:
    """``PITCHSIDE_GRAFANA_URL``: Grafana's base URL for the viewer's links, or unset.

    An ``http(s)://HOST[:PORT][/PATH]`` URL, kept without its trailing ``/`` (the viewer adds
    ``/d/<dashboard>``), so no query or fragment; no credentials either: every viewer sees it.
    """
    url = raw.strip()
    if not url:
        return None
    expects = "PITCHSIDE_GRAFANA_URL must be an http:// or https:// URL of Grafana such as "
    expects += "http://127.0.0.1:3000 or https://example.org/grafana"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port: ValueError when it is no number
    except ValueError:
        raise SettingsError(f"{expects}, got {redact_url(url)!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{expects}, got {redact_url(url)!r}")
    if "@" in parts.netloc:
        raise SettingsError(
            "PITCHSIDE_GRAFANA_URL must hold no user or password (every viewer sees the URL), "
            f"got {redact_url(url)!r}"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise SettingsError(
            "PITCHSIDE_GRAFANA_URL must be Grafana's base URL, without a query or fragment "
            f"(the viewer adds /d/<dashboard>?var-stream=...), got {url!r}"
        )
    return url.rstrip("/")


#: The variables of access control; a private stack (the benchmarks') sets them all empty.
ACCESS_VARIABLES = (
    "PITCHSIDE_TOKEN", "PITCHSIDE_TOKEN_FILE", "PITCHSIDE_VIEWER_TOKEN",
    "PITCHSIDE_VIEWER_TOKEN_FILE", "PITCHSIDE_METRICS_AUTH", "PITCHSIDE_HEALTH_AUTH",
)  # fmt: skip
TOKEN_MIN_CHARS = 16
TOKEN_MAX_CHARS = 4096
_TOKEN_HINT = 'e.g. python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


def _token(env: Mapping[str, str], name: str) -> str | None:
    """A token from ``name`` or from the file ``name_FILE`` names (its trailing newline
    stripped), or None when neither is set. Messages never echo a token."""
    raw = env.get(name) or None
    path = (env.get(f"{name}_FILE") or "").strip()
    if raw is not None and path:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    source = name
    if path:
        source = f"{name}_FILE ({path})"
        try:
            raw = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
            raise SettingsError(
                f"{name}_FILE names a file that cannot be read: {path}: {reason}"
            ) from None
        if not raw:
            raise SettingsError(f"{name}_FILE names an empty file: {path}")
    if raw is None:
        return None
    if not all("!" <= c <= "~" for c in raw):
        raise SettingsError(
            f"{source} must be printable ASCII without spaces (it travels in an HTTP header), "
            f"got {len(raw)} characters that are not; {_TOKEN_HINT}"
        )
    if not TOKEN_MIN_CHARS <= len(raw) <= TOKEN_MAX_CHARS:
        raise SettingsError(
            f"{source} must be {TOKEN_MIN_CHARS} to {TOKEN_MAX_CHARS} characters long, got "
            f"{len(raw)}; {_TOKEN_HINT}"
        )
    return raw


def _origins(raw: str, name: str) -> tuple[str, ...]:
    """A comma list of web origins (``scheme://host[:port]``), or ``*`` for any origin."""
    origins = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        if part == "*":
            origins.append(part)
            continue
        try:
            parts = urlsplit(part)
            parts.port  # noqa: B018 - parses the port: ValueError when it is no number
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise SettingsError(
                f"{name} must be a comma list of origins such as https://example.org or "
                f"http://127.0.0.1:3000 (scheme, host and port only), or *, got {part!r}"
            )
        origins.append(f"{parts.scheme.lower()}://{parts.netloc.lower()}")
    return tuple(dict.fromkeys(origins))


def _check_access(settings: Settings) -> None:
    """What the access-control settings need of each other."""
    if settings.token is None:
        needs = [
            name
            for name, given in (
                ("PITCHSIDE_VIEWER_TOKEN", settings.viewer_token is not None),
                ("PITCHSIDE_METRICS_AUTH", settings.metrics_auth),
                ("PITCHSIDE_HEALTH_AUTH", settings.health_auth),
            )
            if given
        ]
        if needs:
            raise SettingsError(
                f"{' and '.join(needs)} need PITCHSIDE_TOKEN (or PITCHSIDE_TOKEN_FILE), the "
                "operator's token: without it the gateway asks no one for a token"
            )
    elif settings.viewer_token == settings.token:
        raise SettingsError("PITCHSIDE_VIEWER_TOKEN must differ from PITCHSIDE_TOKEN")


def _ice_servers(raw: str) -> tuple[str, ...]:
    """``PITCHSIDE_ICE_SERVERS``: a comma list of ``stun:``/``turn:`` URLs (RFC 7064/7065)."""
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for n, url in enumerate(urls, 1):
        scheme, _, rest = url.partition(":")
        if scheme.lower() not in ICE_SCHEMES or not rest or "@" in rest:
            raise SettingsError(
                "PITCHSIDE_ICE_SERVERS must be a comma list of stun:HOST[:PORT] or "
                "turn:HOST[:PORT][?transport=udp|tcp] URLs (TURN credentials go in "
                f"PITCHSIDE_ICE_USERNAME and PITCHSIDE_ICE_CREDENTIAL); URL {n} of "
                f"{len(urls)} is not one"
            )  # never the value: it might hold a credential
    return urls


def _ice_addresses(raw: str) -> tuple[str, ...]:
    """``PITCHSIDE_ICE_ADDRESSES``: a comma list of this host's IP addresses."""
    addresses = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        try:
            addresses.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise SettingsError(
                f"PITCHSIDE_ICE_ADDRESSES must be a comma list of IP addresses, got {part!r}"
            ) from None
    return tuple(dict.fromkeys(addresses))


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


class _Reader:
    """Casts and range-checks one variable at a time, with a message naming it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(
        self,
        name: str,
        cast: Callable[[str], T],
        default: T,
        lo: float | None = None,
        hi: float | None = None,
    ) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        kind = {int: "an integer", float: "a number"}.get(cast, "true or false")  # type: ignore[call-overload]
        try:
            value = cast(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):  # type: ignore[operator]
            bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise SettingsError(f"{name} must be {bounds}, got {raw!r}")
        return value

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A comma list of some of ``allowed`` (all of them when unset), without regard to case."""
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return allowed
        picked = [p.strip().lower() for p in raw.split(",") if p.strip()]
        unknown = [p for p in picked if p not in allowed]
        if unknown or not picked:
            raise SettingsError(f"{name} must be a comma list of {', '.join(allowed)}, got {raw!r}")
        return tuple(dict.fromkeys(picked))

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        """One of ``allowed``, matched without regard to case."""
        raw = (self._env.get(name) or default).strip()
        for value in allowed:
            if value.lower() == raw.lower():
                return value
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
