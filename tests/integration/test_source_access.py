"""What the API may make ingest open: allowed schemes, and local files in the media folder only.

The answer for a file outside the folder is the same as for a missing one inside it, so that
no client can probe the ingest host's files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pitchside.schema import StreamState
from tests.conftest import CLIP, require_asset
from tests.integration.test_ingest import (
    IngestFactory,
    make_ingest_fixture,  # noqa: F401
)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A media folder with the clip in it (a copy) and a sub-folder."""
    folder = tmp_path / "media"
    (folder / "2026").mkdir(parents=True)
    (folder / "2026" / "final.mp4").write_bytes(require_asset(CLIP).read_bytes())
    return folder


@pytest.mark.parametrize("source", ["{media}/2026/final.mp4", "2026/final.mp4"])
async def test_a_video_in_the_media_folder_plays(
    make_ingest: IngestFactory, media: Path, source: str
) -> None:
    # given the media folder, and a video in it named absolutely or relative to it
    ingest = await make_ingest(media_dir=media)
    # when it is started, then it plays
    reply = await ingest.start("inside", source.format(media=media))
    assert (reply.ok, reply.status) == (True, 201), reply
    await ingest.wait_frames("inside", 3)
    assert (await ingest.stop_stream("inside")).status == 200


async def test_files_outside_the_media_folder_answer_as_missing_ones_do(
    make_ingest: IngestFactory, media: Path, tmp_path: Path
) -> None:
    # given a media folder, a link in it that leads out of it, and files around it
    (media / "escape.mp4").symlink_to(require_asset(CLIP))
    ingest = await make_ingest(media_dir=media)
    cases = {
        "etc": "/etc/passwd",  # exists, not a video, outside
        "clip": str(require_asset(CLIP)),  # a real video, outside
        "dots": "../../" + "/".join(Path(require_asset(CLIP)).parts[1:]),  # `..` out of it
        "link": "escape.mp4",  # a link inside pointing outside
        "gone": str(media / "nothing.mp4"),  # inside, missing
        "gone2": "/nonexistent.mp4",  # outside, missing
    }
    answers = {}
    for sid, source in cases.items():
        # when each is started
        reply = await ingest.start(sid, source)
        # then each is refused with 422, FAILED
        assert (reply.ok, reply.status) == (False, 422), (sid, reply)
        assert (await ingest.info(sid)).state is StreamState.FAILED
        answers[sid] = (reply.error or "").replace(Path(source).name, "NAME")
    # and the answers are all alike: nothing says whether a file exists or what it is
    assert len(set(answers.values())) == 1, answers
    assert answers["etc"] == "no video 'NAME' in the media folder"


async def test_a_file_the_operator_named_plays_wherever_it_is(
    make_ingest: IngestFactory, media: Path
) -> None:
    # given a video outside the media folder that the operator allowed (pitchside up --source)
    clip = str(require_asset(CLIP))
    ingest = await make_ingest(media_dir=media, media_allow=(clip,))
    # when it is started, then it plays, and a neighbour of it is still refused
    assert (await ingest.start("named", clip)).ok
    other = os.path.join(os.path.dirname(clip), "other.mp4")
    assert (await ingest.start("other", other)).status == 422
    assert (await ingest.stop_stream("named")).status == 200


async def test_a_scheme_that_is_not_allowed_is_refused(
    make_ingest: IngestFactory, media: Path
) -> None:
    ingest = await make_ingest(media_dir=media, source_schemes=("file",))
    reply = await ingest.start("cam", "rtsp://user:secret@127.0.0.1:9/live")
    assert (reply.ok, reply.status) == (False, 422), reply
    assert reply.error == "rtsp sources are not allowed here; allowed: file"
