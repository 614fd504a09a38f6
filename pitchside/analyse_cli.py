"""``pitchside analyse FILE``: upload a match video to a running gateway, analyse every frame,
wait with a progress bar, and download the results.

It talks to the gateway's REST API only (``--url``, default the ``pitchside up`` address):
``POST /api/uploads`` (the file streamed from disk), ``POST /api/jobs``, ``GET
/api/jobs/{id}`` every half second, then the job's ``results.jsonl``, ``results.csv`` and,
unless ``--no-video``, the annotated ``video.mp4`` into ``--out``. Ctrl-C cancels the job.
With ``PITCHSIDE_TOKEN`` (or ``PITCHSIDE_TOKEN_FILE``) set, every request carries it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from pitchside.errors import ExitCode, InvalidRequestError, PitchsideError
from pitchside.settings import Settings, auth_headers

POLL_S = 0.5
CHUNK = 1 << 20


class AnalyseError(PitchsideError):
    """The gateway refused a step, could not be reached, or the job failed."""

    code = "analyse_failed"
    exit_code = ExitCode.FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the match video to analyse")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="folder for the results (default: FILE's name with -results, beside it)",
    )  # fmt: skip
    parser.add_argument(
        "--url", default=None,
        help="the gateway (default: http://PITCHSIDE_HOST:PITCHSIDE_PORT, as pitchside up)",
    )  # fmt: skip
    parser.add_argument("--no-video", action="store_true", help="skip the annotated video")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for one HTTP answer"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not path.is_file():
        raise InvalidRequestError(f"no such file: {path}")
    out: Path = args.out or path.with_name(f"{path.stem}-results")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = (args.url or f"http://{host}:{settings.port}").rstrip("/")
    headers = auth_headers(settings)  # PITCHSIDE_TOKEN or its file, when the gateway asks one
    with httpx.Client(base_url=base, timeout=args.timeout, headers=headers) as client:
        upload = _upload(client, path)
        job = _call(client, "POST", "/api/jobs", "starting the job", json={"upload": upload["id"]})
        try:
            job = _wait(client, job)
        except KeyboardInterrupt:
            _call(client, "DELETE", f"/api/jobs/{job['id']}", "cancelling the job")
            print(f"\njob {job['id']} cancelled", file=sys.stderr)
            return ExitCode.INTERRUPTED
        if job["state"] != "done":
            raise AnalyseError(f"job {job['id']} {job['state']}: {job.get('error') or 'no reason'}")
        out.mkdir(parents=True, exist_ok=True)
        links = job["links"]
        wanted = [("results.jsonl", links["results_jsonl"]), ("results.csv", links["results_csv"])]
        if not args.no_video:
            wanted.append(("video.mp4", links["video"]))
        for name, link in wanted:
            _download(client, link, out / name)
    print(f"{job['frames_done']} frames analysed; results in {out}")
    return ExitCode.OK


# -------------------------------------------------------------------- steps


def _upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    bar = Bar(f"upload {path.name}", size, unit="MiB", scale=2**20)
    with path.open("rb") as raw:
        reader = _CountingReader(raw, bar)
        files = {"file": (path.name, reader, "application/octet-stream")}
        upload: dict[str, Any] = _call(
            client, "POST", "/api/uploads", "uploading", files=files, timeout=None
        )
    bar.done()
    return upload


def _wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    bar = Bar(f"analyse job {job['id']}", job.get("frames_total") or 0, unit="frames")
    while job["state"] in ("queued", "running"):
        time.sleep(POLL_S)
        job = _call(client, "GET", f"/api/jobs/{job['id']}", "following the job")
        bar.total = job.get("frames_total") or bar.total
        extra = f"{job['fps']:.1f} fps" if job.get("fps") else ""
        if job.get("eta_s") is not None:
            extra += f", ETA {_clock(job['eta_s'])}"
        bar.update(job["frames_done"], extra)
    bar.done()
    return job


def _download(client: httpx.Client, link: str, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".part")
    with client.stream("GET", link, timeout=None) as response:
        if response.status_code != 200:
            response.read()
            raise AnalyseError(f"downloading {dest.name}: {_detail(response)}")
        with partial.open("wb") as file:
            for chunk in response.iter_bytes(CHUNK):
                file.write(chunk)
    partial.replace(dest)
    print(f"  {dest} ({dest.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)


def _call(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise AnalyseError(
            f"{what}: cannot reach the gateway at {client.base_url} ({exc})"
        ) from exc
    if response.status_code >= 400:
        raise AnalyseError(f"{what}: {_detail(response)}")
    return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('error')}: {body.get('detail')}"
    except ValueError:
        return f"{response.status_code} {response.reason_phrase}"


# -------------------------------------------------------------------- progress


class Bar:
    """A one-line progress bar on stderr: redrawn in place on a terminal, a line every tenth
    of the way otherwise (logs stay short)."""

    WIDTH = 30

    def __init__(self, label: str, total: float, unit: str, scale: float = 1.0) -> None:
        self.label, self.total, self.unit, self.scale = label, total, unit, scale
        self._tty = sys.stderr.isatty()
        self._shown_tenth = -1
        self._line = ""

    def update(self, value: float, extra: str = "") -> None:
        share = min(1.0, value / self.total) if self.total else 0.0
        filled = int(share * self.WIDTH)
        amount = f"{value / self.scale:.0f}/{self.total / self.scale:.0f} {self.unit}"
        self._line = (
            f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} "
            f"{amount}{'  ' + extra if extra else ''}"
        )
        if self._tty:
            print(f"\r{self._line}\033[K", end="", file=sys.stderr, flush=True)
        elif int(share * 10) > self._shown_tenth:
            self._shown_tenth = int(share * 10)
            print(self._line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._tty and self._line:
            print(file=sys.stderr)


class _CountingReader:
    """A file for httpx's multipart body that moves a bar as httpx reads it in chunks."""

    def __init__(self, file: IO[bytes], bar: Bar) -> None:
        self._file, self._bar, self._read = file, bar, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._read += len(chunk)
        self._bar.update(self._read)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        self._read = 0 if offset == 0 and whence == 0 else self._read
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:  # httpx sizes the body from it (Content-Length, no buffering)
        return self._file.fileno()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
