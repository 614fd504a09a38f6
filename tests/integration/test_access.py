"""Access control of the gateway (gateway/auth.py): tokens and roles, the browser session
cookie, origins and CORS, with the real app and a real redis-server.

HTTP runs in-process through httpx's ASGI transport (``serving``); WebSockets through a real
uvicorn on 127.0.0.1 and the ``websockets`` client (``serve``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from gateway import auth as auth_module
from gateway.app import create_app
from pitchside import registry
from pitchside.schema import StreamInfo, StreamState
from pitchside.settings import Settings
from tests.integration import test_gateway_api
from tests.integration.test_gateway_api import FakeIngest, serving
from tests.integration.test_ws import closed, live_stream, recv, serve, viewer

ingest = test_gateway_api.ingest  # the fake ingest fixture: answers start and stop

OPERATOR = "op-token-0123456789abcdef"
VIEWER = "view-token-0123456789abcdef"
TTL_S = 600
OPERATOR_HEADERS = {"Authorization": f"Bearer {OPERATOR}"}
VIEWER_HEADERS = {"Authorization": f"Bearer {VIEWER}"}


class Clock:
    """Epoch seconds the test moves by hand (session expiry without sleeping)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def secured(settings: Settings) -> Settings:
    """Settings with both tokens set, as PITCHSIDE_TOKEN and PITCHSIDE_VIEWER_TOKEN do."""
    return settings.replace(
        token=OPERATOR, viewer_token=VIEWER, session_ttl_s=float(TTL_S), control_timeout_s=5.0
    )


@pytest.fixture
async def client(secured: Settings, clock: Clock, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(secured, clock=clock)) as c:
        yield c


def _info(sid: str) -> StreamInfo:
    return StreamInfo(sid=sid, source=f"/videos/{sid}.mp4", state=StreamState.LIVE)


def _cookie_of(response: httpx.Response) -> str:
    """The session cookie's value from a Set-Cookie header."""
    header = response.headers["set-cookie"]
    name, _, rest = header.partition("=")
    assert name == auth_module.SESSION_COOKIE, header
    return rest.split(";", 1)[0]


async def _sign_in(client: httpx.AsyncClient, token: str) -> str:
    response = await client.post("/api/session", json={"token": token})
    assert response.status_code == 200, response.text
    return _cookie_of(response)


# ------------------------------------------------------------------ tokens


async def test_api_answers_401_with_www_authenticate_when_no_token_comes(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    # given a gateway with a token and a stream
    await registry.put(redis, _info("cam-1"))
    # when the API is called without a token, for a stream, a list, a job and an unknown path
    for path in ("/api/streams", "/api/streams/cam-1", "/api/jobs", "/api/nothing-here", "/docs"):
        response = await client.get(path)
        # then each is 401 in the app's error shape, saying how to send one
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Bearer realm="pitchside"'
        body = response.json()
        assert body["error"] == "unauthorized"
        assert "Authorization: Bearer" in body["detail"], body
    # and a POST is refused before its body is looked at
    refused = await client.post("/api/streams", json={"source": "/videos/x.mp4"})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {OPERATOR}x", f"Bearer {OPERATOR[:-1]}", f"bearer {VIEWER}{VIEWER}", "Bearer "],
)
async def test_api_answers_401_invalid_token_for_a_wrong_token(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get("/api/streams", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "detail": "the token is not valid"}
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_api_leaves_other_authorization_schemes_to_a_proxy(
    client: httpx.AsyncClient,
) -> None:
    # given a proxy's Basic credentials in front of the gateway
    basic = {"Authorization": f"Basic {base64.b64encode(b'user:pw').decode()}"}
    # then they are no token: 401 asking for one, and the session cookie still works
    refused = await client.get("/api/streams", headers=basic)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="pitchside"'
    jar = {auth_module.SESSION_COOKIE: await _sign_in(client, VIEWER)}
    assert (await client.get("/api/streams", headers=basic, cookies=jar)).status_code == 200


async def test_api_never_reads_a_token_from_the_query_string(client: httpx.AsyncClient) -> None:
    # a query string ends up in access logs: a token there must not work
    response = await client.get("/api/streams", params={"token": OPERATOR})
    assert response.status_code == 401


async def test_operator_token_may_read_and_start_and_stop_streams(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    # given the operator's token
    # when it lists, starts and stops a stream
    listed = await client.get("/api/streams", headers=OPERATOR_HEADERS)
    started = await client.post(
        "/api/streams", json={"source": "/videos/a.mp4", "id": "a"}, headers=OPERATOR_HEADERS
    )
    stopped = await client.delete("/api/streams/a", headers=OPERATOR_HEADERS)
    # then each is done
    assert listed.status_code == 200
    assert started.status_code == 201, started.text
    assert stopped.status_code == 204, stopped.text


async def test_viewer_token_may_read_but_not_start_or_stop_streams(
    client: httpx.AsyncClient, redis: Redis, ingest: FakeIngest
) -> None:
    # given a stream and the viewer's token
    await registry.put(redis, _info("cam-1"))
    # when it reads the streams, then tries to start one and to stop that one
    listed = await client.get("/api/streams", headers=VIEWER_HEADERS)
    one = await client.get("/api/streams/cam-1", headers=VIEWER_HEADERS)
    start = await client.post(
        "/api/streams", json={"source": "/videos/b.mp4", "id": "b"}, headers=VIEWER_HEADERS
    )
    stop = await client.delete("/api/streams/cam-1", headers=VIEWER_HEADERS)
    # then it reads, and both changes are refused with 403 saying why; ingest heard nothing
    assert listed.status_code == 200 and [s["sid"] for s in listed.json()["streams"]] == ["cam-1"]
    assert one.status_code == 200
    for refused in (start, stop):
        assert refused.status_code == 403
        body = refused.json()
        assert body["error"] == "read_only"
        assert "PITCHSIDE_TOKEN" in body["detail"] and "viewer token" in body["detail"]
    assert ingest.received == []
    assert (await registry.get(redis, "cam-1")).state is StreamState.LIVE


# ------------------------------------------------------------------ the session cookie


async def test_session_cookie_signs_a_browser_in_until_it_expires(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    # given a browser that signs in with the operator's token
    response = await client.post("/api/session", json={"token": OPERATOR})
    assert response.status_code == 200
    assert response.json() == {"auth": True, "role": "operator", "expires": int(clock.now) + TTL_S}
    # then the cookie is HttpOnly, SameSite=Strict, for the whole site, short-lived
    header = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={TTL_S}"):
        assert attribute in header, header
    assert OPERATOR not in header
    cookie = _cookie_of(response)
    jar = {auth_module.SESSION_COOKIE: cookie}
    # and it opens the API in place of the token, and says who the browser is
    assert (await client.get("/api/streams", cookies=jar)).status_code == 200
    whoami = await client.get("/api/session", cookies=jar)
    assert whoami.json()["role"] == "operator"
    # when its time is up
    clock.now += TTL_S
    # then it opens nothing any more, and the answer says to sign in again
    expired = await client.get("/api/streams", cookies=jar)
    assert expired.status_code == 401
    assert "sign in again" in expired.json()["detail"]


async def test_session_cookie_is_renewed_once_past_half_its_life(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    # given a session signed in a while ago
    cookie = await _sign_in(client, OPERATOR)
    jar = {auth_module.SESSION_COOKIE: cookie}
    fresh = await client.get("/api/streams", cookies=jar)
    assert "set-cookie" not in fresh.headers  # young: not renewed
    # when the browser uses it after more than half its life
    clock.now += TTL_S * 0.6
    used = await client.get("/api/streams", cookies=jar)
    # then the answer carries a new cookie, valid for a whole life from now
    assert used.status_code == 200
    renewed = _cookie_of(used)
    clock.now += TTL_S * 0.6  # the first one has expired by now
    assert (await client.get("/api/streams", cookies=jar)).status_code == 401
    later = await client.get("/api/streams", cookies={auth_module.SESSION_COOKIE: renewed})
    assert later.status_code == 200


async def test_session_refuses_a_wrong_token_and_a_forged_cookie(
    client: httpx.AsyncClient,
) -> None:
    # a wrong token gets no cookie
    wrong = await client.post("/api/session", json={"token": "not-the-token-at-all"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    # a viewer's cookie whose role is rewritten to operator is refused
    cookie = await _sign_in(client, VIEWER)
    version, role, expires, signature = cookie.split(".")
    assert role == "viewer"
    for forged in (f"{version}.operator.{expires}.{signature}", f"{version}.{role}.{expires}.x"):
        response = await client.get("/api/streams", cookies={auth_module.SESSION_COOKIE: forged})
        assert response.status_code == 401, forged


async def test_viewer_session_may_watch_but_not_change_anything(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    cookie = await _sign_in(client, VIEWER)
    jar = {auth_module.SESSION_COOKIE: cookie}
    assert (await client.get("/api/session", cookies=jar)).json()["role"] == "viewer"
    assert (await client.get("/api/streams", cookies=jar)).status_code == 200
    start = await client.post("/api/streams", json={"source": "/videos/b.mp4"}, cookies=jar)
    assert start.status_code == 403 and start.json()["error"] == "read_only"
    assert ingest.received == []


async def test_session_cookie_cannot_change_anything_from_a_foreign_origin(
    client: httpx.AsyncClient, ingest: FakeIngest
) -> None:
    # given an operator's browser session
    jar = {auth_module.SESSION_COOKIE: await _sign_in(client, OPERATOR)}
    body = {"source": "/videos/c.mp4", "id": "c"}
    # when a page of another origin makes the browser post with it
    foreign = await client.post(
        "/api/streams", json=body, cookies=jar, headers={"Origin": "http://evil.example"}
    )
    # then it is refused; the gateway's own page may
    assert foreign.status_code == 403 and foreign.json()["error"] == "origin_not_allowed"
    own = await client.post(
        "/api/streams", json=body, cookies=jar, headers={"Origin": "http://gateway"}
    )
    assert own.status_code == 201, own.text


async def test_session_cookie_is_secure_for_a_page_served_over_https(
    client: httpx.AsyncClient,
) -> None:
    # given the viewer behind a TLS proxy: its page's origin is https
    page = {"Origin": "https://pitch.example"}
    response = await client.post("/api/session", json={"token": VIEWER}, headers=page)
    # then the browser sends the cookie back over HTTPS only
    assert response.headers["set-cookie"].endswith("; Secure")
    plain = await client.post("/api/session", json={"token": VIEWER})
    assert "Secure" not in plain.headers["set-cookie"]


async def test_sign_out_clears_the_cookie(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/session")
    assert response.status_code == 204
    assert "Max-Age=0" in response.headers["set-cookie"]


# ------------------------------------------------------------------ open paths, CORS


async def test_viewer_shell_and_probes_and_metrics_are_open_by_default(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/static/viewer.js", "/healthz", "/metrics"):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get("/readyz")).status_code in (200, 503)  # no ingest here: 503


async def test_probes_and_metrics_need_a_token_when_configured(
    secured: Settings, redis: Redis
) -> None:
    settings = secured.replace(metrics_auth=True, health_auth=True)
    async with serving(create_app(settings)) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/metrics", headers=VIEWER_HEADERS)).status_code == 200
        assert (await client.get("/healthz", headers=VIEWER_HEADERS)).status_code == 200


async def test_no_token_configured_means_no_access_control(
    settings: Settings, redis: Redis, ingest: FakeIngest
) -> None:
    # given a gateway without PITCHSIDE_TOKEN (today's behaviour)
    async with serving(create_app(settings.replace(control_timeout_s=5.0))) as client:
        # then everything answers without a token, even with a wrong one
        assert (await client.get("/api/streams")).status_code == 200
        bad = {"Authorization": "Bearer whatever"}
        started = await client.post(
            "/api/streams", json={"source": "/x.mp4", "id": "x"}, headers=bad
        )
        assert started.status_code == 201
        who = await client.get("/api/session")
        assert who.json() == {"auth": False, "role": "operator", "expires": None}


async def test_cors_headers_are_absent_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://dash.example"}
    simple = await client.get("/api/streams", headers={**origin, **OPERATOR_HEADERS})
    preflight = await client.options(
        "/api/streams", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    for response in (simple, preflight):
        assert not [h for h in response.headers if h.startswith("access-control-")]


async def test_cors_answers_a_configured_origin_and_its_preflight(
    secured: Settings, redis: Redis
) -> None:
    # given PITCHSIDE_CORS_ORIGINS naming a dashboard's origin
    settings = secured.replace(cors_origins=("https://dash.example",))
    async with serving(create_app(settings)) as client:
        # when that page asks to POST with a token
        preflight = await client.options(
            "/api/streams",
            headers={
                "Origin": "https://dash.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        # then the preflight allows it, without a token (browsers send none with one)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]
        # and a 401 carries the headers too, so that the page can read why
        refused = await client.get("/api/streams", headers={"Origin": "https://dash.example"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://dash.example"
        # and another origin gets none
        other = await client.get(
            "/api/streams", headers={"Origin": "https://evil.example", **OPERATOR_HEADERS}
        )
        assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------ WebSockets


async def test_ws_closes_4401_without_a_token_or_with_a_wrong_one(
    secured: Settings, redis: Redis
) -> None:
    await live_stream(redis, "cam-1")
    async with serve(secured) as gateway:
        async with viewer(gateway.ws_url("cam-1")) as ws:
            assert await closed(ws) == (4401, "token needed")
        wrong = {"Authorization": f"Bearer {OPERATOR}x"}
        async with viewer(gateway.ws_url("cam-1"), additional_headers=wrong) as ws:
            assert await closed(ws) == (4401, "token not valid")
        # a token in the query string is no token
        async with viewer(gateway.ws_url("cam-1", f"?token={OPERATOR}")) as ws:
            assert (await closed(ws))[0] == 4401


def _subprotocol(token: str) -> str:
    return auth_module.WS_TOKEN_PREFIX + base64.urlsafe_b64encode(token.encode()).decode().rstrip(
        "="
    )


async def test_ws_lets_a_viewer_watch_by_header_subprotocol_or_cookie(
    secured: Settings, redis: Redis
) -> None:
    # given a live stream on a gateway with tokens
    await live_stream(redis, "cam-1")
    async with serve(secured) as gateway:
        # when viewers connect with the viewer token as a bearer header, as a subprotocol
        # (the gateway then selects "pitchside") and with a session cookie
        async with httpx.AsyncClient(base_url=gateway.http_url) as http:
            signed = await http.post("/api/session", json={"token": VIEWER})
        cookie = f"{auth_module.SESSION_COOKIE}={_cookie_of(signed)}"
        ways: list[dict[str, Any]] = [
            {"additional_headers": VIEWER_HEADERS},
            {"subprotocols": ["pitchside", _subprotocol(VIEWER)]},
            {"additional_headers": {"Cookie": cookie}},
        ]
        for kw in ways:
            async with viewer(gateway.ws_url("cam-1", "?frames=0"), **kw) as ws:
                # then each gets the hello
                hello = await recv(ws)
                assert isinstance(hello, str) and '"hello"' in hello, kw
                if "subprotocols" in kw:
                    assert ws.subprotocol == "pitchside"


async def test_ws_refuses_a_page_of_a_foreign_origin_with_4403(
    settings: Settings, redis: Redis
) -> None:
    # given a gateway without tokens, and one stream
    await live_stream(redis, "cam-1")
    async with serve(settings.replace(ws_origins=("https://dash.example",))) as gateway:
        # when pages of a foreign origin, of the gateway's own and of an allowed one connect
        async with viewer(gateway.ws_url("cam-1"), origin="http://evil.example") as ws:
            assert await closed(ws) == (4403, "origin not allowed")
        for origin in (gateway.http_url, "https://dash.example"):
            async with viewer(gateway.ws_url("cam-1", "?frames=0"), origin=origin) as ws:
                assert '"hello"' in str(await recv(ws)), origin


async def test_ws_handshake_is_never_refused_before_the_close_code(
    secured: Settings, redis: Redis
) -> None:
    # a refused viewer must see 4401, not a failed handshake (which a browser shows as 1006)
    async with serve(secured) as gateway:
        try:
            async with viewer(gateway.ws_url("nope"), subprotocols=["pitchside"]) as ws:
                assert ws.subprotocol == "pitchside"
                assert (await closed(ws))[0] == 4401
        except InvalidStatus as exc:  # pragma: no cover - the failure this test guards against
            pytest.fail(f"handshake refused with HTTP {exc.response.status_code}")
