// pitchside viewer: stream list, start form, the live canvas of one stream, and publishing
// this device's camera (WHIP). Uploaded matches and their analysis jobs: uploads.js.
// Vanilla JS, no build step, nothing loaded from elsewhere. Protocol: docs/protocol.md.
"use strict";

(() => {
  const POLL_MS = 2000;
  const WINDOW_MS = 1000; // fps and latency readouts cover the last second
  const ACTIVE = new Set(["connecting", "live", "reconnecting"]);
  const CLASS_COLOURS = {
    player: "#3b82f6",
    goalkeeper: "#f97316",
    referee: "#e11d48",
    ball: "#facc15",
  };
  const PALETTE = ["#22c55e", "#a855f7", "#06b6d4", "#84cc16", "#ec4899", "#14b8a6",
    "#eab308", "#8b5cf6", "#f43f5e", "#0ea5e9"];
  // Tracked streams (docs/protocol.md, "Tracked streams"): boxes in their team's shirt colour.
  const NEUTRAL = "#a1a1aa"; // referees, and tracks whose team is not known
  const TEAM_FALLBACK = { A: "#60a5fa", B: "#f87171" }; // until the shirt colours are known
  const BALL_COLOUR = "#facc15";
  const TRAIL_COLOUR = "#ffffff";
  const DIM_ALPHA = 0.3; // the other tracks while one is highlighted
  const HEX_RE = /^#[0-9a-f]{6}$/i;

  const $ = (sel) => document.querySelector(sel);
  const canvas = $("#view");
  const ctx = canvas.getContext("2d");
  const decoder = new TextDecoder();

  // What a browser test reads: frames drawn, boxes in the last drawn frame, stream shown,
  // the last stats event and how many came (and, below, the camera publishing state).
  // `tracked`: what the last draw of a tracked frame showed, null until one is drawn:
  //   {draws, seq, boxes: [{id, label, team, colour, dashed, focused, dimmed}],
  //    ball: {x, y, predicted, trail} | null (x, y: its centre in source pixels),
  //    possession: the frame's possession | null, highlight: id | null, lost: bool}
  // Read-only, for tests and integrators; rebuilt on each draw, never read back by the viewer.
  const exposed = {
    framesShown: 0, lastBoxes: 0, sid: null, stats: null, statsCount: 0, tracked: null,
  };
  window.pitchside = exposed;

  const view = {
    sid: null, // stream selected
    ws: null,
    over: false, // the selected stream ended, failed, stopped or was deleted
    retry: 0, // reconnect attempts since the last good connection
    retryTimer: null,
    latest: null, // newest undecoded frame {meta, jpeg}; older ones are dropped
    decoding: false,
    ready: null, // decoded frame waiting for the next animation frame
    shown: null, // frame on the canvas {meta, bitmap}, kept to redraw on toggles
    drawTimes: [],
    latencies: [], // [time, ms]
    labels: new Set(),
    hidden: new Set(),
    tracked: false, // a frame of this stream came with tracks
    highlight: null, // the track id the user clicked, followed across frames
    headKey: null, // what the possession bar and the track note show, to skip unchanged updates
  };
  let streams = [];
  let grafanaUrl = null; // GET /api/config: Grafana's base URL, null for no links

  // ------------------------------------------------------------------ status banner

  function status(text, kind = "info") {
    const el = $("#status");
    if (!text) {
      el.hidden = true;
      el.textContent = "";
      el.className = "";
      return;
    }
    el.hidden = false;
    el.textContent = text;
    el.className = kind;
  }

  function overText(sid, state, error) {
    const what = { ended: "ended", failed: "failed", stopped: "was stopped", deleted: "was deleted" };
    return `Stream ${sid} ${what[state] || state}${error ? `: ${error}` : ""}`;
  }

  async function errorDetail(resp) {
    try {
      const body = await resp.json();
      return `${body.detail || resp.statusText} (${resp.status} ${body.error || ""})`.trim();
    } catch (_) {
      return `${resp.status} ${resp.statusText}`;
    }
  }

  // ------------------------------------------------------------------ Grafana links

  // Dashboards by uid (monitoring/grafana/dashboards): every stream, and one with `stream`.
  const OVERVIEW_DASHBOARD = "pitchside-overview";
  const STREAM_DASHBOARD = "pitchside-stream";

  async function loadConfig() {
    try {
      const resp = await fetch("/api/config", { cache: "no-store" });
      if (!resp.ok) return; // the links stay hidden: the viewer works without them
      grafanaUrl = ((await resp.json()).grafana_url || "").replace(/\/+$/, "") || null;
    } catch (_) {
      return;
    }
    const overview = $("#grafana");
    overview.hidden = !grafanaUrl;
    if (grafanaUrl) overview.href = `${grafanaUrl}/d/${OVERVIEW_DASHBOARD}`;
    showStreamLink();
  }

  function showStreamLink() {
    const link = $("#grafana-stream");
    link.hidden = !(grafanaUrl && view.sid);
    if (!link.hidden) {
      link.href = `${grafanaUrl}/d/${STREAM_DASHBOARD}?var-stream=${encodeURIComponent(view.sid)}`;
      link.title = `Grafana dashboard of ${view.sid}`;
    }
  }

  // ------------------------------------------------------------------ stream list

  async function poll() {
    try {
      const asked = performance.now();
      const resp = await fetch("/api/streams", { cache: "no-store" });
      if (!resp.ok) throw new Error(await errorDetail(resp));
      streams = (await resp.json()).streams;
      if ($("#status").textContent.startsWith("Cannot list streams")) status("");
      renderList();
      checkSelected();
      checkPublished(asked);
    } catch (err) {
      status(`Cannot list streams: ${err.message}`, "error");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function renderList() {
    const list = $("#streams");
    const items = streams.map((s) => {
      const li = document.createElement("li");
      li.dataset.sid = s.sid;
      li.dataset.state = s.state;
      if (s.sid === view.sid) li.classList.add("selected");
      const name = document.createElement("span");
      name.className = "sid";
      name.textContent = s.sid;
      const state = document.createElement("span");
      state.className = `state state-${s.state}`;
      state.textContent = s.mode === "analyse" ? `${s.state} · analyse` : s.state;
      if (s.reconnects) state.textContent += ` · ${s.reconnects} reconnect${s.reconnects > 1 ? "s" : ""}`;
      const del = document.createElement("button");
      del.className = "delete";
      del.type = "button";
      del.textContent = "delete";
      del.title = `Stop and delete ${s.sid}`;
      del.addEventListener("click", (ev) => {
        ev.stopPropagation();
        remove(s.sid);
      });
      const source = document.createElement("span");
      source.className = "source";
      source.textContent = s.error ? `${s.source} (${s.error})` : s.source;
      const head = document.createElement("span");
      head.append(name, " ", state);
      li.append(head, del, source);
      li.addEventListener("click", () => select(s.sid));
      return li;
    });
    list.replaceChildren(...items);
    $("#no-streams").hidden = streams.length > 0;
  }

  function checkSelected() {
    if (view.sid === null) {
      const first = streams.find((s) => s.state === "live");
      if (first) select(first.sid);
      return;
    }
    const entry = streams.find((s) => s.sid === view.sid);
    if (!entry) {
      if (!view.over) status(overText(view.sid, "deleted"), "over");
      deselect();
    } else if (!ACTIVE.has(entry.state) && !view.over) {
      ended(entry.sid, entry.state, entry.error);
    }
  }

  async function remove(sid) {
    const resp = await fetch(`/api/streams/${encodeURIComponent(sid)}`, { method: "DELETE" });
    if (resp.ok || resp.status === 404) {
      status(`Deleted stream ${sid}`, "ok");
      if (sid === view.sid) deselect();
      streams = streams.filter((s) => s.sid !== sid);
      renderList();
    } else {
      status(`Could not delete ${sid}: ${await errorDetail(resp)}`, "error");
    }
  }

  // ------------------------------------------------------------------ start form

  // A stream just started (its 201 StreamInfo): list it at once and show it.
  function watch(info) {
    status(`Started stream ${info.sid}`, "ok");
    streams = streams.filter((s) => s.sid !== info.sid).concat([info]);
    renderList();
    select(info.sid);
  }

  // uploads.js starts streams too ("Watch live" on an upload) and hands them over this way.
  window.addEventListener("pitchside:watch", (ev) => watch(ev.detail));

  $("#start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = ev.target.querySelector("button");
    const body = {
      source: $("#source").value,
      mode: $("#mode").value,
      loop: $("#loop").checked,
    };
    const sid = $("#sid").value.trim();
    if (sid) body.id = sid;
    button.disabled = true;
    status("Starting…", "info");
    try {
      const resp = await fetch("/api/streams", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!resp.ok) {
        status(`Could not start the stream: ${await errorDetail(resp)}`, "error");
        return;
      }
      watch(await resp.json());
    } catch (err) {
      status(`Could not start the stream: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  // ------------------------------------------------------------------ publish a camera (WHIP)

  // Non-trickle WHIP (RFC 9725): one POST carries the offer with every ICE candidate, the 201
  // carries the answer and a Location that a DELETE ends. README "WebRTC publishing (WHIP)".
  const SID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/; // SID_PATTERN in pitchside/schema.py
  const GATHER_MS = 5000; // then send the candidates gathered so far
  const pub = { pc: null, camera: null, location: null, since: 0 }; // since: the 201, ms
  exposed.publish = { state: "idle", sid: null, error: null }; // idle | starting | live | error

  function publishShow(state, error = null) {
    const button = $("#publish");
    exposed.publish.state = state;
    exposed.publish.error = error;
    // From the 201 on there is a session to end, even before the media flows.
    button.textContent = pub.location ? "Stop camera" : "Go live with this camera";
    button.classList.toggle("stop", Boolean(pub.location));
    button.disabled = state === "starting" && !pub.location;
    $("#publish-sid").disabled = state === "starting" || state === "live";
    const note = $("#publish-status");
    const sid = exposed.publish.sid;
    const text = {
      starting: pub.location ? `Connecting ${sid}…` : "Starting the camera…",
      live: `Live as ${sid}`,
      error: error,
    }[state];
    note.hidden = !text;
    note.textContent = text || "";
    note.className = state;
    $("#preview").hidden = !pub.camera;
  }

  function cameraError(err) {
    const why = {
      NotAllowedError: "camera permission was denied; allow the camera for this page and try again",
      NotFoundError: "no camera was found",
      OverconstrainedError: "no camera was found",
      NotReadableError: "the camera is in use by another application or cannot be read",
      SecurityError: "the camera may only be used on HTTPS or localhost pages",
    }[err.name];
    return `Cannot use the camera: ${why || err.message || err.name}`;
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", done);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }, GATHER_MS);
      pc.addEventListener("icegatheringstatechange", done);
      done();
    });
  }

  // Close the pc and the camera; the server session (if any) is the caller's to end first.
  function unpublish() {
    const { pc, camera } = pub;
    pub.pc = null;
    pub.camera = null;
    pub.location = null;
    if (camera) for (const track of camera.getTracks()) track.stop();
    if (pc) pc.close();
    $("#preview").srcObject = null;
  }

  function endSession(where, keepalive = false) {
    return fetch(where, { method: "DELETE", keepalive });
  }

  async function goLive(sid) {
    exposed.publish.sid = sid;
    publishShow("starting");
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      // Browsers offer no camera to a page served over plain HTTP, localhost aside.
      const why = window.isSecureContext
        ? "this browser has no WebRTC"
        : "open this page over HTTPS (or on localhost)";
      return publishShow("error", `Cannot publish a camera: ${why}`);
    }
    try {
      pub.camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (err) {
      return publishShow("error", cameraError(err));
    }
    $("#preview").srcObject = pub.camera;
    const pc = new RTCPeerConnection(); // no iceServers: the server configures none by default
    pub.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (pub.pc !== pc) return; // an old connection, closed on purpose
      if (pc.connectionState === "connected") {
        publishShow("live");
      } else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        if (pub.location) endSession(pub.location).catch(() => {}); // it may still be open there
        const why = pc.connectionState === "failed" ? "failed" : "was closed by the server";
        unpublish();
        publishShow("error", `The WebRTC connection to the server ${why}`);
      }
    });
    for (const track of pub.camera.getVideoTracks()) {
      // Detection needs pixels more than frames: under CPU or bandwidth pressure the browser
      // should send fewer frames, not smaller ones (its default for a camera is the reverse).
      const { sender } = pc.addTransceiver(track, { direction: "sendonly" });
      const params = sender.getParameters();
      params.degradationPreference = "maintain-resolution";
      sender.setParameters(params).catch(() => {}); // not every browser takes it
      track.addEventListener("ended", () => stopCamera("The camera stopped sending"));
    }
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      let resp;
      try {
        resp = await fetch(`/whip/${encodeURIComponent(sid)}`, {
          method: "POST",
          headers: { "Content-Type": "application/sdp" },
          body: pc.localDescription.sdp,
        });
      } catch (err) {
        throw new Error(`Cannot reach the server: ${err.message}`);
      }
      if (resp.status !== 201) throw new Error(`Could not go live: ${await errorDetail(resp)}`);
      const answer = await resp.text();
      pub.location = resp.headers.get("Location");
      pub.since = performance.now();
      publishShow("starting");
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    } catch (err) {
      if (pub.pc !== pc) return; // stopped meanwhile
      if (pub.location) endSession(pub.location).catch(() => {});
      unpublish();
      return publishShow("error", err.message);
    }
    // The registry lists it from the 201 on: show it now rather than at the next poll, and
    // never an older stopped entry of the same id.
    const info = { sid, state: "connecting", source: "WebRTC publisher (WHIP)", mode: "live" };
    streams = streams.filter((s) => s.sid !== sid).concat([info]);
    renderList();
    status("");
    select(sid);
  }

  // A stream stopped or deleted on the server (from this list or elsewhere) ends the session
  // there, but ICE here notices only after ~20 s of silence. Only a list asked for after the
  // 201 counts: an older one may show an earlier stream of the same id.
  function checkPublished(asked) {
    const sid = exposed.publish.sid;
    if (!pub.location || asked < pub.since) return;
    const entry = streams.find((s) => s.sid === sid);
    if (entry && ACTIVE.has(entry.state)) return;
    unpublish();
    const why = entry ? `${entry.state}${entry.error ? `: ${entry.error}` : ""}` : "deleted";
    publishShow("error", `Stream ${sid} was ended on the server (${why})`);
  }

  async function stopCamera(error = null) {
    const where = pub.location;
    pub.location = null; // the session is being ended here: checkPublished must not report it
    $("#publish").disabled = true;
    let problem = error;
    // End the session before closing the pc, so the stream is stopped rather than ended.
    if (where) {
      try {
        const resp = await endSession(where);
        if (!resp.ok && resp.status !== 404 && !problem) {
          problem = `Could not end the session: ${await errorDetail(resp)}`;
        }
      } catch (err) {
        problem = problem || `Could not end the session: ${err.message}`;
      }
    }
    unpublish();
    publishShow(problem ? "error" : "idle", problem);
  }

  $("#publish-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (pub.pc) return stopCamera();
    const sid = $("#publish-sid").value.trim();
    if (!SID_RE.test(sid)) {
      exposed.publish.sid = sid;
      return publishShow("error", "The stream id must be 1-63 characters of a-z, 0-9, '-' or '_', "
        + "starting with a letter or digit");
    }
    goLive(sid);
  });

  // A closed tab would leave the stream live until ICE gives up; keepalive outlives the page.
  window.addEventListener("pagehide", () => {
    if (pub.location) endSession(pub.location, true).catch(() => {});
  });

  // ------------------------------------------------------------------ the WebSocket

  function select(sid) {
    if (sid === view.sid && view.ws && !view.over) return;
    deselect();
    view.sid = sid;
    exposed.sid = sid;
    view.over = false;
    view.drawTimes = [];
    view.latencies = [];
    resetTracked();
    $("#stream-title").textContent = sid;
    showStats(null);
    showStreamLink();
    for (const li of document.querySelectorAll("#streams li")) {
      li.classList.toggle("selected", li.dataset.sid === sid);
    }
    const entry = streams.find((s) => s.sid === sid);
    if (entry && !ACTIVE.has(entry.state)) {
      ended(sid, entry.state, entry.error);
      return;
    }
    connect();
  }

  function deselect() {
    clearTimeout(view.retryTimer);
    view.retryTimer = null;
    view.retry = 0;
    if (view.ws) {
      const ws = view.ws;
      view.ws = null;
      ws.onclose = null;
      ws.close(1000, "viewer switched streams");
    }
    view.sid = null;
    exposed.sid = null;
    view.latest = null;
    resetTracked();
    $("#stream-title").textContent = "No stream selected";
    showStats(null);
    showStreamLink();
  }

  function connect() {
    const sid = view.sid;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/streams/${encodeURIComponent(sid)}`);
    ws.binaryType = "arraybuffer";
    view.ws = ws;
    ws.onmessage = (ev) => {
      if (view.ws !== ws) return;
      if (typeof ev.data === "string") onText(JSON.parse(ev.data));
      else onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (view.ws !== ws) return;
      view.ws = null;
      if (ev.code === 4401) {
        // The gateway asks for a token (signin.js): sign in, then watch again.
        window.pitchsideAuth.signIn().then(() => {
          if (view.sid === sid && !view.over && !view.ws) connect();
        });
      } else if (ev.code === 4403) {
        view.over = true;
        status(`This page may not watch ${sid}: ${ev.reason || "origin not allowed"} (4403)`, "error");
      } else if (ev.code === 4404) {
        ended(sid, "deleted");
      } else if (ev.code === 1000 || view.over) {
        if (!view.over) ended(sid, "ended");
      } else {
        reconnectLater(sid, ev.code);
      }
    };
  }

  function onText(msg) {
    if (msg.event === "hello") {
      view.retry = 0;
      if ($("#status").className === "error" && $("#status").textContent.startsWith("Connection")) {
        status("");
      }
    } else if (msg.event === "stats") {
      if (msg.sid === view.sid) showStats(msg);
    } else if (msg.event === "state") {
      ended(msg.sid, msg.state, msg.error);
    }
    // a text frame meta ("seq") is only sent with ?frames=0, which this viewer never asks for
  }

  function ended(sid, state, error) {
    if (sid !== view.sid) return;
    view.over = true;
    clearTimeout(view.retryTimer);
    showStats(null); // the figures of a stream that is over would read as live
    status(overText(sid, state, error), state === "failed" ? "error" : "over");
  }

  // Backoff with full jitter: 0.5 s, 1 s, 2 s ... 10 s at most; only while the stream is live.
  function reconnectLater(sid, code) {
    const delay = Math.random() * Math.min(10000, 500 * 2 ** view.retry);
    view.retry += 1;
    status(`Connection to ${sid} lost (${code}); reconnecting…`, "error");
    view.retryTimer = setTimeout(async () => {
      if (view.sid !== sid || view.over) return;
      try {
        const resp = await fetch(`/api/streams/${encodeURIComponent(sid)}`, { cache: "no-store" });
        if (resp.status === 404) return ended(sid, "deleted");
        if (resp.ok) {
          const info = await resp.json();
          if (!ACTIVE.has(info.state)) return ended(sid, info.state, info.error);
        }
      } catch (_) {
        // the gateway itself is away: try again later
      }
      if (view.sid === sid && !view.over) {
        if (view.retry > 0 && !view.ws) connect();
      }
    }, delay);
  }

  // ------------------------------------------------------------------ frames

  // Binary message: 4-byte big-endian JSON length N, N bytes of UTF-8 JSON, then the JPEG.
  function onFrame(buffer) {
    const n = new DataView(buffer).getUint32(0, false);
    const meta = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, n)));
    const jpeg = new Uint8Array(buffer, 4 + n);
    view.latest = { meta, jpeg }; // a newer frame replaces one not yet decoded
    if (!view.decoding) decodeLoop();
  }

  async function decodeLoop() {
    view.decoding = true;
    try {
      while (view.latest) {
        const { meta, jpeg } = view.latest;
        view.latest = null;
        let bitmap;
        try {
          bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
        } catch (_) {
          continue; // a JPEG the browser cannot decode: skip it
        }
        if (meta.sid !== view.sid) {
          bitmap.close();
          continue;
        }
        if (view.ready) view.ready.bitmap.close(); // never drawn: a newer one is here
        const first = view.ready === null;
        view.ready = { meta, bitmap };
        if (first) requestAnimationFrame(drawReady);
      }
    } finally {
      view.decoding = false;
    }
  }

  function drawReady() {
    const frame = view.ready;
    view.ready = null;
    if (!frame) return;
    if (frame.meta.sid !== view.sid) {
      frame.bitmap.close(); // decoded just before the viewer switched streams
      return;
    }
    if (view.shown) view.shown.bitmap.close();
    view.shown = frame;
    draw(frame);
    const now = performance.now();
    view.drawTimes.push(now);
    view.latencies.push([now, Date.now() - frame.meta.ts_capture / 1e6]);
    exposed.framesShown += 1;
    updateReadouts();
  }

  function colourOf(label) {
    if (CLASS_COLOURS[label]) return CLASS_COLOURS[label];
    let h = 0;
    for (const ch of label) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function fitCanvas(w, h) {
    const ratio = `${w} / ${h}`;
    if (canvas.style.aspectRatio !== ratio) canvas.style.aspectRatio = ratio;
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.min(w, Math.round((canvas.clientWidth || w) * dpr)));
    const ch = Math.max(1, Math.round((cw * h) / w));
    if (canvas.width !== cw || canvas.height !== ch) {
      canvas.width = cw;
      canvas.height = ch;
    }
  }

  function draw({ meta, bitmap }) {
    fitCanvas(meta.w, meta.h);
    const sx = canvas.width / meta.w;
    const sy = canvas.height / meta.h;
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const px = Math.max(1, canvas.width / 640);
    ctx.font = `${Math.round(11 * px)}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    if (Array.isArray(meta.tracks)) {
      exposed.lastBoxes = drawTracked(meta, sx, sy, px);
    } else {
      exposed.lastBoxes = drawDetections(meta.detections, sx, sy, px);
      if (view.tracked) markStale(true); // the tracker went quiet: detections alone for now
    }
    $("#model").textContent = `${meta.model} · ${meta.w}×${meta.h}`;
  }

  function drawDetections(detections, sx, sy, px) {
    ctx.lineWidth = 2 * px;
    let drawn = 0;
    for (const det of detections) {
      noteLabel(det.label);
      if (view.hidden.has(det.label)) continue;
      const [x1, y1, x2, y2] = det.box;
      const colour = colourOf(det.label);
      ctx.strokeStyle = colour;
      ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
      const text = `${det.label} ${Math.round(det.score * 100)}%`;
      const ink = det.label === "ball" ? "#111" : "#fff";
      tag(text, colour, ink, x1 * sx, y1 * sy, y2 * sy, px);
      drawn += 1;
    }
    return drawn;
  }

  // A filled label at a box's top-left corner (under the box when there is no room above).
  function tag(text, colour, ink, x, top, bottom, px) {
    const tw = ctx.measureText(text).width + 4 * px;
    const th = 13 * px;
    const ty = top > th ? top : bottom + th;
    ctx.fillStyle = colour;
    ctx.fillRect(x, ty - th, tw, th);
    ctx.fillStyle = ink;
    ctx.fillText(text, x + 2 * px, ty);
  }

  // ------------------------------------------------------------------ tracked frames

  // A tracked frame: each track in its team's colour with its id, goalkeepers dashed, the
  // ball with its fading trail, and the possession bar above the video. Returns boxes drawn.
  function drawTracked(meta, sx, sy, px) {
    if (!view.tracked) {
      view.tracked = true;
      $("#possession").hidden = false;
      canvas.classList.add("tracked");
      $("#class-toggles").classList.add("tracked"); // class colours do not apply to tracks
    }
    markStale(false);
    const teams = meta.teams || {};
    const focus = view.highlight;
    const focused = focus === null ? undefined : meta.tracks.find((t) => t.id === focus);
    const boxes = [];
    for (const t of meta.tracks) {
      if (t !== focused) drawTrack(t, teams, focused ? "dimmed" : "plain", sx, sy, px, boxes);
    }
    if (focused) drawTrack(focused, teams, "focused", sx, sy, px, boxes); // on top of the rest
    ctx.globalAlpha = 1;
    const ball = drawBall(meta.ball, sx, sy, px);
    const lost = focus !== null && !focused;
    showHead(meta.possession, teams, focused, lost);
    const previous = exposed.tracked;
    exposed.tracked = {
      draws: previous ? previous.draws + 1 : 1, seq: meta.seq, boxes, ball,
      possession: meta.possession || null, highlight: focus, lost,
    };
    return boxes.length + (ball ? 1 : 0);
  }

  function drawTrack(t, teams, look, sx, sy, px, boxes) {
    noteLabel(t.label);
    if (view.hidden.has(t.label)) return;
    const colour = trackColour(t, teams);
    const keeper = t.label === "goalkeeper";
    const [x1, y1, x2, y2] = t.box;
    ctx.globalAlpha = look === "dimmed" ? DIM_ALPHA : 1;
    ctx.lineWidth = (look === "focused" ? 4 : 2) * px;
    ctx.strokeStyle = colour;
    if (keeper) ctx.setLineDash([5 * px, 3 * px]);
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    if (keeper) ctx.setLineDash([]);
    const role = keeper ? " GK" : t.label === "referee" ? " ref" : "";
    tag(`#${t.id}${role}`, colour, inkOn(colour), x1 * sx, y1 * sy, y2 * sy, px);
    boxes.push({
      id: t.id, label: t.label, team: t.team ?? null, colour, dashed: keeper,
      focused: look === "focused", dimmed: look === "dimmed",
    });
  }

  // Its team's shirt colour; referees and tracks of no team in the neutral colour.
  function trackColour(t, teams) {
    if (t.label === "referee" || !t.team) return NEUTRAL;
    return teamColour(t.team, teams);
  }

  function teamColour(team, teams) {
    const known = teams[team];
    if (typeof known === "string" && HEX_RE.test(known)) return known.toLowerCase();
    return TEAM_FALLBACK[team] || NEUTRAL;
  }

  // Dark text on a light colour, white on a dark one.
  const inks = new Map();
  function inkOn(colour) {
    let ink = inks.get(colour);
    if (ink === undefined) {
      const n = parseInt(colour.slice(1), 16);
      const luma = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
      ink = luma > 0.6 ? "#111" : "#fff";
      inks.set(colour, ink);
    }
    return ink;
  }

  // The trail first (older segments fainter), then the ball at its box's centre: filled when
  // detected, a dashed ring where the tracker predicts it (the detector missed it).
  function drawBall(ball, sx, sy, px) {
    if (!ball || !Array.isArray(ball.box)) return null;
    noteLabel("ball");
    if (view.hidden.has("ball")) return null;
    const trail = Array.isArray(ball.trail) ? ball.trail : [];
    ctx.lineWidth = 2 * px;
    ctx.lineCap = "round";
    ctx.strokeStyle = TRAIL_COLOUR;
    for (let i = 1; i < trail.length; i += 1) {
      ctx.globalAlpha = 0.1 + (0.7 * i) / (trail.length - 1);
      ctx.beginPath();
      ctx.moveTo(trail[i - 1][0] * sx, trail[i - 1][1] * sy);
      ctx.lineTo(trail[i][0] * sx, trail[i][1] * sy);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    ctx.lineCap = "butt";
    const [x1, y1, x2, y2] = ball.box;
    const cx = ((x1 + x2) / 2) * sx;
    const cy = ((y1 + y2) / 2) * sy;
    const r = Math.max(4 * px, (Math.max(x2 - x1, y2 - y1) * sx) / 2 + px);
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    if (ball.predicted) {
      ctx.setLineDash([3 * px, 2 * px]);
      ctx.lineWidth = 2 * px;
      ctx.strokeStyle = BALL_COLOUR;
      ctx.stroke();
      ctx.setLineDash([]);
    } else {
      ctx.fillStyle = BALL_COLOUR;
      ctx.fill();
      ctx.lineWidth = px;
      ctx.strokeStyle = "#111";
      ctx.stroke();
    }
    return { x: cx / sx, y: cy / sy, predicted: Boolean(ball.predicted), trail: trail.length };
  }

  // The possession bar and the highlight note; the DOM is touched only when what they show
  // changes (percentages are rounded, so that is rarely).
  function showHead(possession, teams, focused, lost) {
    const p = possession || {};
    const percent = p.percent || {};
    const a = Math.round(percent.A || 0);
    const b = Math.round(percent.B || 0);
    const ca = teamColour("A", teams);
    const cb = teamColour("B", teams);
    let holder = "loose"; // nobody has the ball
    if (p.team) holder = p.player == null ? `team ${p.team}` : `${p.team} #${p.player}`;
    let note = "";
    if (focused) note = `following #${focused.id}${focused.team ? ` (team ${focused.team})` : ""}`;
    else if (lost) note = `#${view.highlight} lost`;
    const key = [a, b, ca, cb, holder, note].join("|");
    if (key === view.headKey) return;
    view.headKey = key;
    const bar = $("#possession-bar");
    bar.setAttribute("aria-valuenow", String(a));
    bar.setAttribute("aria-valuetext", `team A ${a}%, team B ${b}%`);
    const segments = [[$("#possession-a"), "A", a, ca], [$("#possession-b"), "B", b, cb]];
    for (const [el, name, share, colour] of segments) {
      el.textContent = `${name} ${share}%`;
      el.style.flexGrow = String(a + b > 0 ? share : 1);
      el.style.background = colour;
      el.style.color = inkOn(colour);
    }
    $("#possession-holder").textContent = `ball: ${holder}`;
    const el = $("#track-note");
    el.hidden = !note;
    el.textContent = note;
    el.classList.toggle("lost", lost);
  }

  function markStale(stale) {
    const el = $("#possession");
    if (el.classList.contains("stale") === stale) return;
    el.classList.toggle("stale", stale);
    el.title = stale ? "The tracker is quiet: showing the detections alone" : "";
  }

  function resetTracked() {
    view.tracked = false;
    view.highlight = null;
    view.headKey = null;
    exposed.tracked = null;
    $("#possession").hidden = true;
    $("#track-note").hidden = true;
    markStale(false);
    canvas.classList.remove("tracked");
    $("#class-toggles").classList.remove("tracked");
  }

  // The track under a point of the canvas (source pixels): the smallest box holding it,
  // with a few pixels of slack as players are small; null for none.
  function trackAt(meta, x, y, slack) {
    let best = null;
    let bestArea = Infinity;
    for (const t of meta.tracks) {
      if (view.hidden.has(t.label)) continue;
      const [x1, y1, x2, y2] = t.box;
      if (x < x1 - slack || x > x2 + slack || y < y1 - slack || y > y2 + slack) continue;
      const area = (x2 - x1) * (y2 - y1);
      if (area < bestArea) {
        best = t.id;
        bestArea = area;
      }
    }
    return best;
  }

  // Click a track to highlight it (it stays highlighted across frames); click it again, or
  // anywhere else, or press Escape, to clear.
  canvas.addEventListener("click", (ev) => {
    const frame = view.shown;
    if (!frame || !Array.isArray(frame.meta.tracks)) {
      view.highlight = null; // nothing to follow in bare detections
      view.headKey = null;
      $("#track-note").hidden = true;
      return;
    }
    const { meta } = frame;
    const rect = canvas.getBoundingClientRect();
    const kx = meta.w / (canvas.clientWidth || meta.w); // source pixels per CSS pixel
    const ky = meta.h / (canvas.clientHeight || meta.h);
    const x = (ev.clientX - rect.left - canvas.clientLeft) * kx;
    const y = (ev.clientY - rect.top - canvas.clientTop) * ky;
    const hit = trackAt(meta, x, y, 4 * kx);
    view.highlight = hit === null || hit === view.highlight ? null : hit;
    draw(frame);
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || view.highlight === null) return;
    view.highlight = null;
    if (view.shown) draw(view.shown);
  });
  // ------------------------------------------------------------------ class toggles

  function noteLabel(label) {
    if (view.labels.has(label)) return;
    view.labels.add(label);
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !view.hidden.has(label);
    box.dataset.label = label;
    box.addEventListener("change", () => {
      if (box.checked) view.hidden.delete(label);
      else view.hidden.add(label);
      if (view.shown) draw(view.shown);
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(label);
    const wrap = document.createElement("label");
    wrap.dataset.label = label;
    wrap.append(box, swatch, label);
    const toggles = $("#class-toggles");
    const after = [...toggles.children].find((el) => el.textContent > label);
    toggles.insertBefore(wrap, after || null);
  }

  // ------------------------------------------------------------------ readouts

  function updateReadouts() {
    const now = performance.now();
    while (view.drawTimes.length && now - view.drawTimes[0] > WINDOW_MS) view.drawTimes.shift();
    while (view.latencies.length && now - view.latencies[0][0] > WINDOW_MS) view.latencies.shift();
    $("#fps").textContent = String(view.drawTimes.length);
    if (view.latencies.length) {
      const sorted = view.latencies.map((p) => p[1]).sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
      $("#latency").textContent = `${Math.round(median)} ms`;
    } else {
      $("#latency").textContent = "-";
    }
  }

  // The gateway's figures of the stream (the stats event, about once a second): ingest's
  // frame rate, what the workers detected and what reached this viewer, the latency from
  // capture to sending, and the frames lost on the way. docs/protocol.md, "stats".
  function showStats(msg) {
    const el = $("#stats");
    if (!msg) {
      el.textContent = "\u00a0"; // keeps the line's height: no jump when figures come
      el.title = "";
      return;
    }
    exposed.stats = msg;
    exposed.statsCount += 1;
    const f = (n) => (n === null || n === undefined ? "-" : n.toFixed(1));
    const ms = (n) => (n === null || n === undefined ? "-" : String(Math.round(n)));
    const drops = msg.drops_per_s || {};
    const latency = msg.latency_p50_ms === null
      ? "latency -"
      : `${ms(msg.latency_p50_ms)} ms p50 / ${ms(msg.latency_p95_ms)} p95`;
    let dropped = `dropped ${f(drops.skipped)}/s skipped, ${f(drops.slow_client)} slow`;
    if (drops.frame_trimmed) dropped += `, ${f(drops.frame_trimmed)} trimmed`;
    el.textContent = [
      `in ${f(msg.fps_in)} fps`, `detected ${f(msg.fps_detected)}`, `shown ${f(msg.fps_shown)}`,
      latency, dropped,
    ].join(" · ");
    el.title = `Measured by the gateway over the last ${msg.window_s} s: frames per second `
      + "ingested, detected by the workers and sent to this viewer; capture-to-send latency; "
      + "frames per second lost (skipped by the workers, dropped for a slow viewer, trimmed).";
  }

  setInterval(updateReadouts, 500); // let the readouts fall to 0 when frames stop
  showStats(null);
  loadConfig();
  poll();
})();
