"""Settings.from_env: defaults, every variable, and a clear error for each bad value."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pitchside import settings as settings_module
from pitchside.errors import SettingsError
from pitchside.settings import Settings, auth_headers, default_model_path


def test_settings_from_an_empty_environment_are_the_defaults() -> None:
    # given no variable at all
    settings = Settings.from_env({})
    # then every field has its documented default
    assert settings == Settings()
    assert settings.redis_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.workers == 1
    assert settings.max_width is None
    assert settings.data_dir == Path(".pitchside")
    assert settings.model_uri == str(default_model_path())


def test_settings_treat_empty_values_as_unset() -> None:
    env = {name: "" for name, _, _ in EVERY_VARIABLE}
    assert Settings.from_env(env) == Settings()


# variable, value, expected (field name, parsed value)
EVERY_VARIABLE: list[tuple[str, str, tuple[str, Any]]] = [
    ("REDIS_URL", "redis://10.0.0.5:6379/1", ("redis_url", "redis://10.0.0.5:6379/1")),
    ("PITCHSIDE_FRAMES_MAXLEN", "75", ("frames_maxlen", 75)),
    ("PITCHSIDE_DETS_MAXLEN", "1000", ("dets_maxlen", 1000)),
    ("PITCHSIDE_DATA_DIR", "/var/lib/pitchside", ("data_dir", Path("/var/lib/pitchside"))),
    ("PITCHSIDE_HOST", "0.0.0.0", ("host", "0.0.0.0")),
    ("PITCHSIDE_PORT", "9000", ("port", 9000)),
    ("PITCHSIDE_WS_QUEUE", "8", ("ws_queue", 8)),
    ("PITCHSIDE_CONTROL_TIMEOUT_S", "2.5", ("control_timeout_s", 2.5)),
    ("PITCHSIDE_PREDICT_MAX_MB", "10", ("predict_max_mb", 10)),
    ("PITCHSIDE_PREDICT_MAX_PIXELS", "8000000", ("predict_max_pixels", 8_000_000)),
    ("PITCHSIDE_UPLOAD_MAX_MB", "512", ("upload_max_mb", 512)),
    ("PITCHSIDE_JPEG_QUALITY", "95", ("jpeg_quality", 95)),
    ("PITCHSIDE_MAX_WIDTH", "1280", ("max_width", 1280)),
    ("PITCHSIDE_ANALYSE_MAX_LAG", "32", ("analyse_max_lag", 32)),
    ("PITCHSIDE_WATCHDOG_S", "2.5", ("watchdog_s", 2.5)),
    ("PITCHSIDE_SOURCE_TIMEOUT_S", "3", ("source_timeout_s", 3.0)),
    ("PITCHSIDE_RECONNECT_INITIAL_S", "0.25", ("reconnect_initial_s", 0.25)),
    ("PITCHSIDE_RECONNECT_MAX_S", "30", ("reconnect_max_s", 30.0)),
    ("PITCHSIDE_RTSP_TRANSPORT", "UDP", ("rtsp_transport", "udp")),
    ("PITCHSIDE_SOURCE_SCHEMES", "RTSP,file", ("source_schemes", ("rtsp", "file"))),
    ("PITCHSIDE_MEDIA_DIR", "/videos", ("media_dir", Path("/videos"))),
    ("PITCHSIDE_MEDIA_ALLOW", "/a.mp4:/b c.mp4", ("media_allow", ("/a.mp4", "/b c.mp4"))),
    ("PITCHSIDE_ICE_SERVERS", "stun:stun.example.org:3478, turn:turn.example.org?transport=tcp",
     ("ice_servers", ("stun:stun.example.org:3478", "turn:turn.example.org?transport=tcp"))),
    ("PITCHSIDE_ICE_USERNAME", "pitch", ("ice_username", "pitch")),
    ("PITCHSIDE_ICE_CREDENTIAL", "s3cret", ("ice_credential", "s3cret")),
    ("PITCHSIDE_ICE_ADDRESSES", "127.0.0.1, ::1,127.0.0.1",
     ("ice_addresses", ("127.0.0.1", "::1"))),
    ("PITCHSIDE_MODEL", "models:/football@champion", ("model", "models:/football@champion")),
    ("PITCHSIDE_HEALTH_URL", "http://127.0.0.1:9/x", ("health_url", "http://127.0.0.1:9/x")),
    ("PITCHSIDE_CLASSIFIER", "models:/ball-classifier@champion",
     ("classifier", "models:/ball-classifier@champion")),
    ("PITCHSIDE_WORKERS", "3", ("workers", 3)),
    ("PITCHSIDE_CONF", "0.4", ("conf", 0.4)),
    ("PITCHSIDE_IOU", "0.6", ("iou", 0.6)),
    ("PITCHSIDE_IMGSZ", "1280", ("imgsz", 1280)),
    ("PITCHSIDE_BATCH", "8", ("batch_max", 8)),
    ("PITCHSIDE_BATCH_MS", "12.5", ("batch_timeout_ms", 12.5)),
    ("PITCHSIDE_PROVIDERS", "CPUExecutionProvider", ("providers", "CPUExecutionProvider")),
    ("PITCHSIDE_LANES", "3", ("lanes", 3)),
    ("PITCHSIDE_THREADS", "2", ("threads", 2)),
    ("PITCHSIDE_MODEL_POLL_S", "30", ("model_poll_s", 30.0)),
    ("PITCHSIDE_CLAIM_IDLE_MS", "5000", ("claim_idle_ms", 5000)),
    ("PITCHSIDE_TRACKERS", "2", ("trackers", 2)),
    ("PITCHSIDE_TRACKER_LEASE_S", "1.5", ("tracker_lease_s", 1.5)),
    ("PITCHSIDE_TRACKER_WAIT_MS", "40", ("tracker_wait_ms", 40.0)),
    ("PITCHSIDE_TRACKER_ANALYSE_WAIT_S", "90", ("tracker_analyse_wait_s", 90.0)),
    ("DATABASE_URL", "postgresql+psycopg://pitch:s3cret@db.local:5432/results",
     ("database_url", "postgresql+psycopg://pitch:s3cret@db.local:5432/results")),
    ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000", ("mlflow_tracking_uri", "http://127.0.0.1:5000")),
    ("PITCHSIDE_METRICS_HOST", "0.0.0.0", ("metrics_host", "0.0.0.0")),
    ("PITCHSIDE_METRICS_PORT", "9464", ("metrics_port", 9464)),
    ("PITCHSIDE_METRICS_MAX_STREAMS", "20", ("metrics_max_streams", 20)),
    ("PITCHSIDE_GRAFANA_URL", "http://127.0.0.1:3000/", ("grafana_url", "http://127.0.0.1:3000")),
    ("PITCHSIDE_LOG_LEVEL", "debug", ("log_level", "DEBUG")),
    ("PITCHSIDE_LOG_JSON", "true", ("log_json", True)),
    ("PITCHSIDE_TOKEN", "op-token-0123456789abcdef", ("token", "op-token-0123456789abcdef")),
    ("PITCHSIDE_VIEWER_TOKEN", "view-token-0123456789", ("viewer_token", "view-token-0123456789")),
    ("PITCHSIDE_SESSION_TTL_S", "600", ("session_ttl_s", 600.0)),
    ("PITCHSIDE_CORS_ORIGINS", "https://Example.org, http://127.0.0.1:3000/",
     ("cors_origins", ("https://example.org", "http://127.0.0.1:3000"))),
    ("PITCHSIDE_WS_ORIGINS", "*", ("ws_origins", ("*",))),
    ("PITCHSIDE_METRICS_AUTH", "1", ("metrics_auth", True)),
    ("PITCHSIDE_HEALTH_AUTH", "yes", ("health_auth", True)),
]  # fmt: skip
OPERATOR_TOKEN = "op-token-0123456789abcdef"
#: Variables that mean something only with the operator's token: their rows get one too.
NEED_A_TOKEN = {"PITCHSIDE_VIEWER_TOKEN", "PITCHSIDE_METRICS_AUTH", "PITCHSIDE_HEALTH_AUTH"}


@pytest.mark.parametrize(("variable", "raw", "expected"), EVERY_VARIABLE, ids=lambda v: str(v))
def test_settings_parse_every_variable(variable: str, raw: str, expected: tuple[str, Any]) -> None:
    # given one variable set (with the operator's token, for those that need it)
    context = {"PITCHSIDE_TOKEN": OPERATOR_TOKEN} if variable in NEED_A_TOKEN else {}
    settings = Settings.from_env({**context, variable: raw})
    # then its field holds the parsed value and every other field keeps its default
    field, value = expected
    assert getattr(settings, field) == value
    fields = {"token": OPERATOR_TOKEN} if context else {}
    assert settings == Settings().replace(**fields, **{field: value})


def test_every_settings_field_has_a_variable_in_the_table() -> None:
    # a new setting needs a row here and one in the README's configuration table
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {field for _, _, (field, _) in EVERY_VARIABLE}


def test_settings_classifier_uri_is_the_given_or_the_bundled_classifier() -> None:
    assert Settings.from_env({"PITCHSIDE_CLASSIFIER": "/m/c.onnx"}).classifier_uri == "/m/c.onnx"
    assert Settings.from_env({}).classifier_uri.endswith("models/ball-classifier.onnx")


def test_settings_model_uri_is_the_given_model() -> None:
    settings = Settings.from_env({"PITCHSIDE_MODEL": "/models/x.onnx"})
    assert settings.model_uri == "/models/x.onnx"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False), ("off", False)],
)
def test_settings_parse_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"PITCHSIDE_LOG_JSON": raw}).log_json is expected


BAD_VALUES: list[tuple[str, str, str]] = [
    # variable, bad value, what the message must say
    ("PITCHSIDE_FRAMES_MAXLEN", "many", "must be an integer"),
    ("PITCHSIDE_FRAMES_MAXLEN", "1", "at least 2"),
    ("PITCHSIDE_DETS_MAXLEN", "-5", "at least 2"),
    ("PITCHSIDE_PORT", "80.5", "must be an integer"),
    ("PITCHSIDE_PORT", "70000", "between 0 and 65535"),
    ("PITCHSIDE_WS_QUEUE", "0", "between 1 and 1000"),
    ("PITCHSIDE_CONTROL_TIMEOUT_S", "soon", "must be a number"),
    ("PITCHSIDE_CONTROL_TIMEOUT_S", "0", "at least 0.1"),
    ("PITCHSIDE_JPEG_QUALITY", "101", "between 1 and 100"),
    ("PITCHSIDE_PREDICT_MAX_MB", "0", "between 1 and 4096"),
    ("PITCHSIDE_PREDICT_MAX_PIXELS", "lots", "must be an integer"),
    ("PITCHSIDE_UPLOAD_MAX_MB", "0", "must be between 1"),
    ("PITCHSIDE_MAX_WIDTH", "-1", "at least 0"),
    ("PITCHSIDE_ANALYSE_MAX_LAG", "0", "at least 1"),
    ("PITCHSIDE_WORKERS", "257", "between 0 and 256"),
    ("PITCHSIDE_WORKERS", "two", "must be an integer"),
    ("PITCHSIDE_CONF", "1.5", "between 0.0 and 1.0"),
    ("PITCHSIDE_IOU", "high", "must be a number"),
    ("PITCHSIDE_IMGSZ", "16", "between 32 and 4096"),
    ("PITCHSIDE_IMGSZ", "650", "multiple of 32"),
    ("PITCHSIDE_BATCH", "0", "between 1 and 256"),
    ("PITCHSIDE_BATCH_MS", "-1", "between 0.0 and 10000.0"),
    ("PITCHSIDE_LANES", "0", "between 1 and 64"),
    ("PITCHSIDE_THREADS", "300", "between 0 and 256"),
    ("PITCHSIDE_MODEL_POLL_S", "0", "at least 0.1"),
    ("PITCHSIDE_CLAIM_IDLE_MS", "10", "at least 100"),
    ("PITCHSIDE_TRACKERS", "-1", "between 0 and 64"),
    ("PITCHSIDE_TRACKER_LEASE_S", "0.1", "between 0.3 and 600"),
    ("PITCHSIDE_ICE_ADDRESSES", "camera.local", "comma list of IP addresses"),
    ("PITCHSIDE_GRAFANA_URL", "grafana.local:3000", "must be an http:// or https:// URL"),
    ("PITCHSIDE_GRAFANA_URL", "ftp://grafana.local", "must be an http:// or https:// URL"),
    ("PITCHSIDE_GRAFANA_URL", "http://", "must be an http:// or https:// URL"),
    ("PITCHSIDE_GRAFANA_URL", "http://grafana.local:port", "must be an http:// or https:// URL"),
    ("PITCHSIDE_GRAFANA_URL", "http://grafana.local/?orgId=1", "without a query or fragment"),
    ("PITCHSIDE_GRAFANA_URL", "http://grafana.local/#top", "without a query or fragment"),
    ("PITCHSIDE_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR"),
    ("PITCHSIDE_LOG_JSON", "maybe", "must be true or false"),
    ("PITCHSIDE_SESSION_TTL_S", "5", "between 10.0 and 604800.0"),
    ("PITCHSIDE_CORS_ORIGINS", "example.org", "comma list of origins"),
    ("PITCHSIDE_CORS_ORIGINS", "https://example.org/viewer", "scheme, host and port only"),
    ("PITCHSIDE_WS_ORIGINS", "ftp://example.org", "comma list of origins"),
    ("PITCHSIDE_METRICS_AUTH", "maybe", "must be true or false"),
]


@pytest.mark.parametrize(("variable", "raw", "says"), BAD_VALUES)
def test_settings_reject_a_bad_value_naming_the_variable(
    variable: str, raw: str, says: str
) -> None:
    # given one variable with a value pitchside cannot use
    # when the settings are read
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: raw})
    # then the message names the variable, what it expects and what it got
    message = str(caught.value)
    assert variable in message
    assert says in message
    assert raw.upper() in message.upper()


@pytest.mark.parametrize(
    ("threads", "lanes", "expected"),
    [(8, 1, 8), (8, 2, 4), (2, 2, 1), (3, 2, 1), (1, 4, 1)],
)
def test_settings_share_inference_threads_among_lanes(
    threads: int, lanes: int, expected: int
) -> None:
    # given a thread budget shared by callers running a session at once
    settings = Settings(threads=threads)
    # then each session gets its share, never less than one thread
    assert settings.threads_per_session(lanes) == expected


def test_settings_threads_zero_means_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    # given no thread budget on a machine whose process may use 6 cores
    monkeypatch.setattr(settings_module, "usable_cores", lambda: 6)
    # then the cores are shared out among the lanes
    assert Settings(threads=0).threads_per_session(2) == 3
    assert Settings(threads=0).threads_per_session(1) == 6


def test_settings_replace_returns_a_changed_copy() -> None:
    settings = Settings()
    changed = settings.replace(port=9001)
    assert changed.port == 9001
    assert settings.port == 8000
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_settings_tracking_uri_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"PITCHSIDE_DATA_DIR": str(tmp_path)})
    assert settings.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    given = Settings.from_env({"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    assert given.tracking_uri == "sqlite:///x.db"


def test_readme_documents_every_variable() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name, _, _ in EVERY_VARIABLE if f"`{name}`" not in readme]
    assert missing == [], f"README.md's configuration table lacks {missing}"


@pytest.mark.parametrize(
    "raw",
    ["stun.example.org", "http://stun.example.org", "turn:", "turn:pitch:s3cret@turn.example.org"],
)
def test_settings_reject_an_ice_server_that_is_no_stun_or_turn_url_without_echoing_it(
    raw: str,
) -> None:
    # given an ICE server that is no stun:/turn: URL, or one with credentials in it
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PITCHSIDE_ICE_SERVERS": raw})
    # then the message names the variable and the form it expects, never the URL's rest
    message = str(caught.value)
    assert "PITCHSIDE_ICE_SERVERS" in message and "PITCHSIDE_ICE_CREDENTIAL" in message
    assert "s3cret" not in message and "example.org" not in message


def test_settings_results_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"PITCHSIDE_DATA_DIR": str(tmp_path)})
    assert settings.results_url == f"sqlite:///{tmp_path.resolve() / 'results.db'}"
    given = Settings.from_env({"DATABASE_URL": "sqlite:////var/lib/pitchside/r.db"})
    assert given.results_url == "sqlite:////var/lib/pitchside/r.db"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("postgres://u:p@db/results", "postgresql+psycopg://u:p@db/results"),
     ("postgresql://u@/results?host=/run/pg", "postgresql+psycopg://u@/results?host=/run/pg"),
     ("SQLITE:///r.db", "sqlite:///r.db")],
)  # fmt: skip
def test_settings_database_url_means_psycopg_for_a_bare_postgresql_url(
    raw: str, expected: str
) -> None:
    assert Settings.from_env({"DATABASE_URL": raw}).database_url == expected


@pytest.mark.parametrize(
    "raw",
    ["mysql://pitch:s3cret@db.local/results", "pitch:s3cret@db.local", "postgresql://",
     "postgresql+asyncpg://pitch:s3cret@db.local/results"],
)  # fmt: skip
def test_settings_reject_a_database_url_of_another_kind_without_its_password(raw: str) -> None:
    # given a DATABASE_URL that is no SQLite or psycopg URL, perhaps with a password
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DATABASE_URL": raw})
    # then the message names the variable and the forms it takes, never the password
    message = str(caught.value)
    assert "DATABASE_URL" in message and "postgresql+psycopg://" in message
    assert "s3cret" not in message


def test_settings_repr_never_shows_the_database_password() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://pitch:s3cret@db.local/results"})
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("https://example.org/grafana/", "https://example.org/grafana"),
     (" HTTP://[::1]:3000 ", "HTTP://[::1]:3000"),
     ("http://grafana:3000", "http://grafana:3000")],
)  # fmt: skip
def test_settings_grafana_url_is_kept_without_its_trailing_slash(raw: str, expected: str) -> None:
    assert Settings.from_env({"PITCHSIDE_GRAFANA_URL": raw}).grafana_url == expected


def test_settings_reject_a_grafana_url_with_credentials_without_echoing_them() -> None:
    # given a Grafana URL with a user and password in it (every viewer would see them)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PITCHSIDE_GRAFANA_URL": "http://admin:s3cret@grafana.local:3000"})
    # then the message names the variable and says why, never the password
    message = str(caught.value)
    assert "PITCHSIDE_GRAFANA_URL" in message and "no user or password" in message
    assert "s3cret" not in message


# ------------------------------------------------------------------ access control


@pytest.mark.parametrize(
    ("raw", "says"),
    [("short-token", "16 to 4096 characters long, got 11"),
     ("a token with spaces in it", "printable ASCII without spaces"),
     ("t\u00f6ken-with-umlaut-0123", "printable ASCII without spaces")],
)  # fmt: skip
def test_settings_reject_a_weak_or_unsendable_token_without_echoing_it(raw: str, says: str) -> None:
    # given a token too short, or one that cannot travel in an HTTP header
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PITCHSIDE_TOKEN": raw})
    # then the message names the variable and the rule, and suggests a good token, never echoing
    message = str(caught.value)
    assert "PITCHSIDE_TOKEN" in message and says in message and "secrets.token_urlsafe" in message
    assert raw not in message


def test_settings_read_the_token_from_its_file_without_the_trailing_newline(
    tmp_path: Path,
) -> None:
    # given token files as editors and `echo` write them, with a trailing newline
    (tmp_path / "op").write_text(OPERATOR_TOKEN + "\n")
    (tmp_path / "viewer").write_text("view-token-0123456789\r\n")
    env = {
        "PITCHSIDE_TOKEN_FILE": str(tmp_path / "op"),
        "PITCHSIDE_VIEWER_TOKEN_FILE": str(tmp_path / "viewer"),
    }
    # when the settings are read
    settings = Settings.from_env(env)
    # then the tokens are the files' contents without the newline
    assert settings.token == OPERATOR_TOKEN
    assert settings.viewer_token == "view-token-0123456789"
    assert settings.auth_enabled


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot be read"), ("", "empty file"), ("\n", "empty file")],
)
def test_settings_reject_a_token_file_that_is_missing_or_empty(
    tmp_path: Path, content: str | None, says: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PITCHSIDE_TOKEN_FILE": str(path)})
    message = str(caught.value)
    assert "PITCHSIDE_TOKEN_FILE" in message and str(path) in message and says in message


def test_settings_reject_a_token_given_both_inline_and_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(OPERATOR_TOKEN)
    env = {"PITCHSIDE_TOKEN": OPERATOR_TOKEN, "PITCHSIDE_TOKEN_FILE": str(tmp_path / "token")}
    with pytest.raises(SettingsError, match="PITCHSIDE_TOKEN or PITCHSIDE_TOKEN_FILE, not both"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "env",
    [{"PITCHSIDE_VIEWER_TOKEN": "view-token-0123456789"}, {"PITCHSIDE_METRICS_AUTH": "1"},
     {"PITCHSIDE_HEALTH_AUTH": "true"}],
)  # fmt: skip
def test_settings_reject_what_needs_the_operator_token_without_it(env: dict[str, str]) -> None:
    # given a viewer token, or protected metrics or probes, but no operator token
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    # then the message names what was set and what it needs
    message = str(caught.value)
    assert next(iter(env)) in message and "need PITCHSIDE_TOKEN" in message
    assert "view-token" not in message


def test_settings_reject_a_viewer_token_equal_to_the_operator_token() -> None:
    env = {"PITCHSIDE_TOKEN": OPERATOR_TOKEN, "PITCHSIDE_VIEWER_TOKEN": OPERATOR_TOKEN}
    with pytest.raises(SettingsError, match="must differ") as caught:
        Settings.from_env(env)
    assert OPERATOR_TOKEN not in str(caught.value)


def test_settings_repr_never_shows_a_token() -> None:
    env = {"PITCHSIDE_TOKEN": OPERATOR_TOKEN, "PITCHSIDE_VIEWER_TOKEN": "view-token-0123456789"}
    shown = repr(Settings.from_env(env))
    assert OPERATOR_TOKEN not in shown and "view-token-0123456789" not in shown


def test_settings_websocket_origins_default_to_the_cors_origins() -> None:
    cors = Settings.from_env({"PITCHSIDE_CORS_ORIGINS": "https://a.example"})
    assert cors.websocket_origins == ("https://a.example",)
    both = Settings.from_env(
        {"PITCHSIDE_CORS_ORIGINS": "https://a.example", "PITCHSIDE_WS_ORIGINS": "https://b.example"}
    )
    assert both.websocket_origins == ("https://b.example",)
    assert Settings().websocket_origins == ()


def test_auth_headers_carry_the_operator_token_only_when_one_is_set() -> None:
    assert auth_headers(Settings()) == {}
    with_token = Settings.from_env({"PITCHSIDE_TOKEN": OPERATOR_TOKEN})
    assert auth_headers(with_token) == {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
