"""The one way a pitchside service opens its Redis client.

Every service talks to the bus through :func:`connect`, so timeouts, health checks, retries
and the client name are the same everywhere:

- no socket read timeout: redis-py 8 defaults ``socket_timeout`` to 5 s, which aborts a
  ``BLPOP``/``XREAD`` blocking longer (the gateway waits up to ``control_timeout_s`` for
  ingest), and its timed reads go through ``asyncio.wait_for``, which on Python 3.11 can
  swallow a task's cancellation. Blocking commands carry their own server-side timeouts;
  a dead peer is found by the connect timeout, TCP keepalive and the health check instead;
- a health check (``PING``) on a connection idle for ``HEALTH_CHECK_S`` before it is reused;
- a few retries with jittered exponential backoff on connection errors and timeouts, so a
  Redis restart or a failover costs a pause, not a crash;
- ``CLIENT SETNAME`` with the service instance's name, so ``CLIENT LIST`` says who is who.

``REDIS_URL`` may also name a Redis Cluster, ``redis+cluster://host:port[,host:port...]``
(``rediss+cluster`` for TLS; the nodes to start from, the client finds the rest): every key a
stream uses carries the stream id as its hash tag, so each stream lives on one shard and the
streams spread over all of them; whoever reads several streams at once reads them one hash
slot at a time (:func:`slot_groups`). Or a Sentinel deployment:
``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`` (``rediss+sentinel``
for TLS to the master). The client asks the sentinels for the master of ``service`` and again
after a failover; the credentials are the master's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pitchside.errors import SettingsError

#: One stream entry as a bytes client returns it from XRANGE/XREAD/XREADGROUP: (id, fields).
Entry = tuple[bytes, dict[bytes, bytes]]

CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_S = 30
RETRIES = 3
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")  # CLIENT SETNAME refuses spaces


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def connect(url: str, client_name: str) -> Redis:
    """A client on ``url`` (``redis://``, ``rediss://``, ``unix://`` or a Sentinel URL, see
    the module docstring), bytes replies.

    Args:
        url: the bus; may hold credentials, so it is never logged here.
        client_name: the service instance, e.g. ``worker-host-1234``.

    Raises:
        SettingsError: a Sentinel URL without sentinels or service name.
    """
    options: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_S,
        "retry": Retry(ExponentialWithJitterBackoff(BACKOFF_CAP_S, BACKOFF_BASE_S), RETRIES),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "client_name": _NAME_UNSAFE.sub("_", client_name)[:128],
    }
    scheme = url.split("://", 1)[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_master(url, options)
    if scheme in CLUSTER_SCHEMES:
        return _cluster(url, options)
    return Redis.from_url(url, **options)


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Redis Cluster client (from a ``redis+cluster://`` URL)."""
    return isinstance(redis, RedisCluster)


def slot_groups(keys: Sequence[str]) -> list[list[str]]:
    """``keys`` grouped by hash slot, in order of first appearance: a cluster refuses one
    command over keys of different slots."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())


def _cluster(url: str, options: dict[str, Any]) -> Redis:
    """The client of a cluster URL's nodes (typed as a plain client: the commands pitchside
    sends are the same, each on keys of one slot)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = [ClusterNode(host, port) for host, port in _hosts(hosts, "a cluster node")]
    if not nodes:
        raise SettingsError("REDIS_URL: a cluster URL is redis+cluster://host:port[,host:port...]")
    client = RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=_is_tls(parts.scheme),
        **options,
    )
    return cast(Redis, client)


def _is_tls(scheme: str) -> bool:
    return scheme.lower().startswith("rediss")


def _hosts(hosts: str, what: str) -> list[tuple[str, int]]:
    found = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise SettingsError(f"REDIS_URL: {what} must be host:port, got {host!r}")
        found.append((name.strip("[]"), int(port)))
    return found


def _sentinel_master(url: str, options: dict[str, Any]) -> Redis:
    """The client of a Sentinel URL's master, found through its sentinels."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [p for p in parts.path.split("/") if p]
    sentinels = _hosts(hosts, "a sentinel")
    if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise SettingsError(
            "REDIS_URL: a Sentinel URL is redis+sentinel://[user:password@]host:port"
            "[,host:port...]/service[/db]"
        )
    # redis-py types Sentinel.__init__ from 8.2 on, not before: call it through a typed name,
    # which both accept without an ignore that one of them would call unused
    new_sentinel: Callable[..., Sentinel] = Sentinel
    sentinel = new_sentinel(
        sentinels, sentinel_kwargs={"socket_connect_timeout": CONNECT_TIMEOUT_S}, **options
    )
    return cast(
        Redis,
        sentinel.master_for(
            unquote(path[0]),
            db=int(path[1]) if len(path) == 2 else 0,
            username=unquote(username) or None,
            password=unquote(password) or None,
            ssl=_is_tls(parts.scheme),
        ),
    )


def stream_entries(reply: object) -> list[tuple[bytes, list[Entry]]]:
    """An XREAD/XREADGROUP reply of a bytes client as ``[(key, [(id, fields), ...]), ...]``.

    redis-py annotates the reply as a union of every protocol's shape; with RESP2 (the
    default) it is a list of pairs, and with RESP3 a dict: both come out as the list.
    """
    if isinstance(reply, dict):
        return cast(list[tuple[bytes, list[Entry]]], list(reply.items()))
    return cast(list[tuple[bytes, list[Entry]]], reply or [])
