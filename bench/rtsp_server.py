"""A real RTSP server (GStreamer's gst-rtsp-server): a camera for the tests and for the benchmark.

Run with Debian's own interpreter, which has the ``gi`` bindings (not the project's venv)::

    /usr/bin/python3 bench/rtsp_server.py PORT CLIP USER PASSWORD
    /usr/bin/python3 bench/rtsp_server.py --check   # gi and elements present? (exit 0)

It listens on 127.0.0.1:PORT only (RTSP over TCP, and RTP/RTCP over UDP on loopback) and serves

- ``/clip``: CLIP (an H.264 MP4) without re-encoding, looping forever. The file is demuxed once
  into memory at start; each client's media is an ``appsrc`` that replays those access units
  with timestamps shifted by one clip length per loop, so the stream is continuous and costs
  no decode or encode (the clip has one IDR, at its start, so every loop starts on one),
- ``/pattern``: an endless live ``videotestsrc`` ball, 640x360 at 25 fps, encoded with x264,
- ``/secure``: the same pattern behind RTSP basic auth for USER:PASSWORD (anything else: 401),

and answers 404 for any other path. It prints ``READY PORT`` once it listens, exits 0 on SIGTERM
or SIGINT, and dies with its parent (PR_SET_PDEATHSIG). Exit status: 2 bad usage, 3 the ``gi``
bindings or a GStreamer element are missing, 4 the port is taken, 1 anything else.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from dataclasses import dataclass

EXIT_MISSING = 3
EXIT_PORT_TAKEN = 4

try:
    import gi  # type: ignore[import-not-found]  # in /usr/bin/python3, not the venv

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # type: ignore[import-not-found]
except (ImportError, ValueError) as exc:  # ValueError: a typelib (gir1.2-*) is missing
    print(f"{sys.executable} cannot load GStreamer's RTSP server bindings: {exc}", file=sys.stderr)
    sys.exit(EXIT_MISSING)

PR_SET_PDEATHSIG = 1
ELEMENTS = ("filesrc", "qtdemux", "h264parse", "appsrc", "appsink", "rtph264pay",
            "videotestsrc", "x264enc", "udpsrc", "udpsink")  # fmt: skip
# No config-interval on rtph264pay after x264enc: with config-interval=-1 FFmpeg decodes one
# frame twice (the same pts) at every keyframe.
PATTERN = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25"
    " ! rtph264pay name=pay0 pt=96 )"
)
CLIP = (
    "( appsrc name=src format=time stream-type=stream max-buffers=8 block=false"
    " ! h264parse ! rtph264pay name=pay0 pt=96 )"
)
ROLE_ANON = "anonymous"
ROLE_USER = "user"
# RTP/RTCP ports for UDP clients, below Linux's ephemeral range (32768-60999) where the free
# ports that other fixtures bind to come from; a port in use is skipped for the next pair.
RTP_PORTS = (20000, 20999)


@dataclass(frozen=True)
class AccessUnit:
    pts: int  # ns from the clip's start
    duration: int  # ns
    delta: bool  # not a keyframe
    data: bytes


@dataclass(frozen=True)
class Clip:
    caps: Gst.Caps
    units: list[AccessUnit]
    length: int  # ns: the loop period


def die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def check_elements() -> None:
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        print(f"GStreamer elements missing: {' '.join(missing)}", file=sys.stderr)
        sys.exit(EXIT_MISSING)


def load_clip(path: str) -> Clip:
    """Demux ``path`` once into H.264 byte-stream access units (SPS/PPS before each IDR)."""
    pipeline = Gst.parse_launch(
        "filesrc name=file ! qtdemux ! h264parse config-interval=-1"
        " ! video/x-h264,stream-format=byte-stream,alignment=au"
        " ! appsink name=sink sync=false emit-signals=false"
    )
    pipeline.get_by_name("file").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[AccessUnit] = []
    caps = None
    while True:
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        if sample is None:
            break
        buf = sample.get_buffer()
        caps = sample.get_caps()
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            sys.exit(f"cannot map a buffer of {path}")
        units.append(
            AccessUnit(
                pts=buf.pts,
                duration=buf.duration,
                delta=buf.has_flags(Gst.BufferFlags.DELTA_UNIT),
                data=bytes(info.data),
            )  # fmt: skip
        )
        buf.unmap(info)
    error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if error is not None:
        sys.exit(f"cannot read {path}: {error.parse_error()[0].message}")
    if not units or caps is None:
        sys.exit(f"no H.264 video in {path}")
    if units[0].delta:
        sys.exit(f"{path} does not start on a keyframe; it cannot loop without re-encoding")
    start = units[0].pts
    units = [AccessUnit(u.pts - start, u.duration, u.delta, u.data) for u in units]
    last = units[-1]
    return Clip(caps=caps, units=units, length=last.pts + last.duration)


class ClipFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]  # gi is untyped
    """One media per client, each replaying the clip from its start, forever."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.set_launch(CLIP)
        self.connect("media-configure", self._configure)

    def _configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.clip.caps)
        position = [0]  # the next access unit, counted over all loops
        src.connect("need-data", self._need_data, position)

    def _need_data(self, src: Gst.Element, _length: int, position: list[int]) -> None:
        units = self.clip.units
        loop, index = divmod(position[0], len(units))
        unit = units[index]
        buf = Gst.Buffer.new_wrapped(unit.data)
        buf.pts = buf.dts = unit.pts + loop * self.clip.length
        buf.duration = unit.duration
        if unit.delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        position[0] += 1
        src.emit("push-buffer", buf)


def pattern_factory() -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PATTERN)
    return factory


def allow(factory: GstRtspServer.RTSPMediaFactory, role: str, construct: bool) -> None:
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            f"{role}, media.factory.access=(boolean)true,"
            f" media.factory.construct=(boolean){'true' if construct else 'false'}"
        )
    )


def token(role: str) -> GstRtspServer.RTSPToken:
    tok = GstRtspServer.RTSPToken()
    tok.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    return tok


def build_server(port: int, clip: Clip, user: str, password: str) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    # RTP/RTCP over UDP from loopback too (without a pool the server binds them to any address).
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range("127.0.0.1", "127.0.0.1", *RTP_PORTS, 0)

    # Every client is "anonymous" until its basic credentials name the user: anonymous may
    # construct /clip and /pattern, and only see (then get 401 from) /secure.
    auth = GstRtspServer.RTSPAuth()
    auth.set_default_token(token(ROLE_ANON))
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token(ROLE_USER))
    server.set_auth(auth)

    mounts = server.get_mount_points()
    for path, factory, open_ in (
        ("/clip", ClipFactory(clip), True),
        ("/pattern", pattern_factory(), True),
        ("/secure", pattern_factory(), False),
    ):
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        factory.set_address_pool(pool)
        allow(factory, ROLE_ANON, construct=open_)
        allow(factory, ROLE_USER, construct=True)
        mounts.add_factory(path, factory)
    return server


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        Gst.init(None)
        check_elements()
        return 0
    if len(argv) != 5:
        print(f"usage: {argv[0]} PORT CLIP USER PASSWORD | --check", file=sys.stderr)
        return 2
    die_with_parent()
    Gst.init(None)
    check_elements()
    port, clip_path, user, password = int(argv[1]), argv[2], argv[3], argv[4]
    server = build_server(port, load_clip(clip_path), user, password)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return EXIT_PORT_TAKEN
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
