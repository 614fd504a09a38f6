// pitchside viewer: uploaded matches (upload with progress, list, watch live, delete) and
// their analysis jobs (start, poll while any runs, cancel, download the results).
// Vanilla JS, no build step, nothing loaded from elsewhere; loaded after viewer.js.
// API: POST/GET /api/uploads, DELETE /api/uploads/{id}, POST /api/streams {source:
// "upload:<id>"}, POST/GET /api/jobs, DELETE /api/jobs/{id}.
"use strict";

(() => {
  const JOB_POLL_MS = 1000; // while a job is queued or running
  const JOB_ACTIVE = new Set(["queued", "running"]);
  const LINKS = [ // Job.links key, the text and file name of its download link
    ["results_jsonl", "results.jsonl"],
    ["results_csv", "results.csv"],
    ["video", "video.mp4"],
  ];

  const $ = (sel) => document.querySelector(sel);

  // What a browser test reads, next to the viewer's own window.pitchside.
  const exposed = window.pitchside || (window.pitchside = {});
  // state: idle | uploading | processing (sent, the server checks the video) | done | error
  // | cancelled
  exposed.upload = { state: "idle", loaded: 0, total: 0, id: null, error: null };
  exposed.jobsPolling = false;

  let uploads = [];
  let jobs = [];

  // ------------------------------------------------------------------ helpers

  // A status line (<p class="note">): kind is info, ok or error; no text hides it.
  function note(el, text, kind = "info") {
    el.hidden = !text;
    el.textContent = text || "";
    el.className = text ? `note ${kind}` : "note";
  }

  // The server's {"error": code, "detail": message} as text, as viewer.js shows it.
  function describe(code, reason, text) {
    try {
      const body = JSON.parse(text);
      if (body && (body.detail || body.error)) {
        const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
        return `${detail || reason} (${code} ${body.error || ""})`.replace(" )", ")");
      }
    } catch (_) {
      // not JSON (a proxy's page, say): the status line is all there is
    }
    return `${code} ${reason}`.trim();
  }

  async function errorDetail(resp) {
    let text = "";
    try {
      text = await resp.text();
    } catch (_) {
      // the body was cut off
    }
    return describe(resp.status, resp.statusText, text);
  }

  async function send(method, url, body) {
    const init = { method, cache: "no-store" };
    if (body !== undefined) {
      init.headers = { "content-type": "application/json" };
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }

  const isNum = (x) => typeof x === "number" && Number.isFinite(x);

  function megabytes(bytes) {
    return (bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0);
  }

  function size(bytes) {
    if (!isNum(bytes)) return "? MB";
    if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
    return `${megabytes(bytes)} MB`;
  }

  // 75 -> "1:15", 3725 -> "1:02:05"
  function clock(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const two = (n) => String(n).padStart(2, "0");
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`;
  }

  function fpsText(fps) {
    return `${Number.isInteger(fps) ? fps : fps.toFixed(fps < 10 ? 2 : 1)} fps`;
  }

  // Only paths and http(s) URLs become links (never javascript: and the like), as given.
  function safeHref(path) {
    if (typeof path !== "string" || !path) return null;
    try {
      const url = new URL(path, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? path : null;
    } catch (_) {
      return null;
    }
  }

  function uploadName(job) {
    const found = uploads.find((u) => u.id === job.upload);
    return (found && found.name) || job.upload || `job ${job.id}`;
  }

  function button(text, className, title, onClick) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = className;
    el.textContent = text;
    el.title = title;
    el.addEventListener("click", onClick);
    return el;
  }

  // Disable a list button while its request runs; the list may be redrawn meanwhile.
  async function busy(el, work) {
    el.disabled = true;
    try {
      await work();
    } finally {
      el.disabled = false;
    }
  }

  // ------------------------------------------------------------------ upload form

  const form = $("#upload-form");
  const fileInput = $("#upload-file");
  const uploadButton = $("#upload-button");
  const cancelButton = $("#upload-cancel");
  const meter = $("#upload-meter");
  const bar = $("#upload-progress");
  const barText = $("#upload-progress-text");
  const formStatus = $("#upload-status");
  let xhr = null; // the upload under way

  function uploading(on) {
    fileInput.disabled = on;
    uploadButton.disabled = on;
    cancelButton.hidden = !on;
  }

  function showProgress(loaded, total) {
    exposed.upload.loaded = loaded;
    exposed.upload.total = total;
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(loaded, total);
      const pct = Math.floor((100 * loaded) / total);
      barText.textContent = `${pct}% · ${megabytes(loaded)} / ${megabytes(total)} MB`;
    } else {
      bar.removeAttribute("value"); // indeterminate
      barText.textContent = `${megabytes(loaded)} MB`;
    }
  }

  function finish(state, message, kind) {
    xhr = null;
    exposed.upload.state = state;
    exposed.upload.error = kind === "error" ? message : null;
    uploading(false);
    if (state !== "done") meter.hidden = true;
    note(formStatus, message, kind);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (xhr) return;
    const file = fileInput.files[0];
    if (!file) {
      exposed.upload.state = "error";
      exposed.upload.error = "Choose a video file to upload";
      note(formStatus, exposed.upload.error, "error");
      return;
    }
    const data = new FormData();
    data.append("file", file, file.name);
    const req = new XMLHttpRequest();
    xhr = req;
    Object.assign(exposed.upload, {
      state: "uploading", loaded: 0, total: file.size, id: null, error: null,
    });
    uploading(true);
    meter.hidden = false;
    showProgress(0, file.size);
    note(formStatus, `Uploading ${file.name}…`, "info");

    req.upload.onprogress = (e) => {
      if (xhr === req) showProgress(e.loaded, e.lengthComputable ? e.total : 0);
    };
    req.upload.onload = () => {
      // Every byte is sent; the server now reads the video before it answers.
      if (xhr !== req) return;
      exposed.upload.state = "processing";
      showProgress(exposed.upload.total || exposed.upload.loaded, exposed.upload.total);
      note(formStatus, `Uploaded ${file.name}; checking the video…`, "info");
    };
    req.onload = () => {
      if (xhr !== req) return;
      if (req.status === 401) {
        // The session expired (signin.js): sign in, then send the file again.
        finish("error", `Sign in to upload ${file.name}`, "error");
        window.pitchsideAuth.signIn().then(() => form.requestSubmit());
        return;
      }
      if (req.status !== 201) {
        finish("error", `Could not upload ${file.name}: `
          + describe(req.status, req.statusText, req.responseText), "error");
        return;
      }
      let info = null;
      try {
        info = JSON.parse(req.responseText);
      } catch (_) {
        // listed below anyway
      }
      exposed.upload.id = info ? info.id : null;
      showProgress(exposed.upload.total, exposed.upload.total);
      barText.textContent = `100% · ${size(info ? info.size : file.size)}`;
      finish("done", `Uploaded ${info ? info.name : file.name}`, "ok");
      form.reset();
      if (info) uploads = [info].concat(uploads.filter((u) => u.id !== info.id));
      renderUploads();
      loadUploads();
    };
    req.onerror = () => {
      // A server that refuses a file early (413) may close the connection before it is sent.
      if (xhr !== req) return;
      finish("error", `Could not upload ${file.name}: the connection failed`, "error");
    };
    req.onabort = () => {
      if (xhr === req) finish("cancelled", `Upload of ${file.name} cancelled`, "info");
    };
    req.open("POST", "/api/uploads");
    req.send(data);
  });

  cancelButton.addEventListener("click", () => {
    if (xhr) xhr.abort();
  });

  // ------------------------------------------------------------------ uploads list

  const uploadsStatus = $("#uploads-status");

  async function loadUploads() {
    try {
      const resp = await fetch("/api/uploads", { cache: "no-store" });
      if (!resp.ok) throw new Error(await errorDetail(resp));
      uploads = (await resp.json()).uploads || [];
      if (uploadsStatus.textContent.startsWith("Cannot list uploads")) note(uploadsStatus, "");
      renderUploads();
      renderJobs(); // job rows name their upload
    } catch (err) {
      note(uploadsStatus, `Cannot list uploads: ${err.message}`, "error");
    }
  }

  function uploadFacts(u) {
    const facts = [];
    facts.push(isNum(u.duration_s) ? clock(u.duration_s) : "? s");
    if (isNum(u.width) && isNum(u.height)) facts.push(`${u.width}×${u.height}`);
    if (isNum(u.fps)) facts.push(fpsText(u.fps));
    if (isNum(u.frames)) facts.push(`${u.frames} frames`);
    facts.push(size(u.size));
    return facts.join(" · ");
  }

  function renderUploads() {
    const items = uploads.map((u) => {
      const li = document.createElement("li");
      li.dataset.id = u.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = u.name || u.id;
      const facts = document.createElement("span");
      facts.className = "facts";
      facts.textContent = uploadFacts(u);
      const actions = document.createElement("div");
      actions.className = "actions";
      const label = u.name || u.id;
      const watchB = button("Watch live", "watch", `Play ${label} as a live stream`,
        () => busy(watchB, () => watchLive(u)));
      const analyseB = button("Analyse", "analyse", `Analyse every frame of ${label}`,
        () => busy(analyseB, () => analyse(u)));
      const deleteB = button("Delete", "delete", `Delete ${label}`,
        () => busy(deleteB, () => removeUpload(u)));
      actions.append(watchB, analyseB, deleteB);
      li.append(name, facts, actions);
      return li;
    });
    $("#uploads-list").replaceChildren(...items);
    $("#no-uploads").hidden = uploads.length > 0;
  }

  async function watchLive(u) {
    const label = u.name || u.id;
    note(uploadsStatus, `Starting ${label}…`, "info");
    try {
      const resp = await send("POST", "/api/streams", { source: `upload:${u.id}` });
      if (!resp.ok) {
        note(uploadsStatus, `Could not watch ${label}: ${await errorDetail(resp)}`, "error");
        return;
      }
      const info = await resp.json();
      note(uploadsStatus, `Watching ${label} as stream ${info.sid}`, "ok");
      window.dispatchEvent(new CustomEvent("pitchside:watch", { detail: info }));
    } catch (err) {
      note(uploadsStatus, `Could not watch ${label}: ${err.message}`, "error");
    }
  }

  async function analyse(u) {
    const label = u.name || u.id;
    try {
      const resp = await send("POST", "/api/jobs", { upload: u.id });
      if (!resp.ok) {
        note(uploadsStatus, `Could not analyse ${label}: ${await errorDetail(resp)}`, "error");
        return;
      }
      const job = await resp.json();
      note(uploadsStatus, `Analysing ${label} (job ${job.id})`, "ok");
      jobs = [job].concat(jobs.filter((j) => j.id !== job.id));
      renderJobs();
      loadJobs(); // polls while it is queued or running
    } catch (err) {
      note(uploadsStatus, `Could not analyse ${label}: ${err.message}`, "error");
    }
  }

  async function removeUpload(u) {
    const label = u.name || u.id;
    try {
      const resp = await send("DELETE", `/api/uploads/${encodeURIComponent(u.id)}`);
      if (resp.ok || resp.status === 404) {
        note(uploadsStatus, `Deleted ${label}`, "ok");
        uploads = uploads.filter((x) => x.id !== u.id);
        renderUploads();
        loadUploads();
      } else {
        note(uploadsStatus, `Could not delete ${label}: ${await errorDetail(resp)}`, "error");
      }
    } catch (err) {
      note(uploadsStatus, `Could not delete ${label}: ${err.message}`, "error");
    }
  }

  // ------------------------------------------------------------------ jobs list

  const jobsStatus = $("#jobs-status");
  const poller = { timer: null, busy: false, again: false };
  const cancelling = new Set(); // job ids whose DELETE is under way (rows are redrawn each poll)

  // Fetch the jobs once; go on every second while any is queued or running.
  async function loadJobs() {
    if (poller.busy) {
      poller.again = true; // a job was just created or cancelled: look again after this one
      return;
    }
    clearTimeout(poller.timer);
    poller.timer = null;
    poller.busy = true;
    try {
      const resp = await fetch("/api/jobs", { cache: "no-store" });
      if (!resp.ok) throw new Error(await errorDetail(resp));
      jobs = (await resp.json()).jobs || [];
      if (jobsStatus.textContent.startsWith("Cannot list jobs")) note(jobsStatus, "");
      renderJobs();
    } catch (err) {
      note(jobsStatus, `Cannot list jobs: ${err.message}`, "error");
    } finally {
      poller.busy = false;
      if (poller.again) {
        poller.again = false;
        loadJobs();
      } else if (jobs.some((j) => JOB_ACTIVE.has(j.state))) {
        poller.timer = setTimeout(loadJobs, JOB_POLL_MS);
      }
      exposed.jobsPolling = poller.busy || poller.timer !== null;
    }
  }

  function jobProgress(job) {
    const bar = document.createElement("progress");
    bar.setAttribute("aria-label", `Progress of job ${job.id}`);
    if (isNum(job.frames_total) && job.frames_total > 0) {
      bar.max = job.frames_total;
      bar.value = Math.min(job.frames_done || 0, job.frames_total);
    } else if (isNum(job.progress)) {
      bar.max = 1;
      bar.value = job.progress;
    } else if (!JOB_ACTIVE.has(job.state)) {
      bar.max = 1;
      bar.value = job.state === "done" ? 1 : 0;
    } // else indeterminate: the number of frames is not known yet
    return bar;
  }

  function jobFacts(job) {
    const done = isNum(job.frames_done) ? job.frames_done : 0;
    const total = isNum(job.frames_total) ? ` / ${job.frames_total}` : "";
    const parts = [`${done}${total} frames`];
    if (job.state === "running") {
      if (isNum(job.fps)) parts.push(fpsText(job.fps));
      if (isNum(job.eta_s)) parts.push(`ETA ${clock(job.eta_s)}`);
    }
    return parts.join(", ");
  }

  function renderJobs() {
    const items = jobs.map((job) => {
      const li = document.createElement("li");
      li.dataset.id = job.id;
      li.dataset.state = job.state;
      const head = document.createElement("span");
      head.className = "head";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = uploadName(job);
      const state = document.createElement("span");
      state.className = `state state-${job.state}`;
      state.textContent = job.state;
      head.append(name, " ", state);
      li.append(head);
      if (JOB_ACTIVE.has(job.state)) {
        const cancel = button("Cancel", "delete cancel", `Cancel job ${job.id}`,
          () => cancelJob(job));
        cancel.disabled = cancelling.has(job.id);
        li.append(cancel);
      }
      const facts = document.createElement("span");
      facts.className = "facts";
      facts.textContent = jobFacts(job);
      li.append(jobProgress(job), facts);
      if (job.state === "failed" && job.error) {
        const error = document.createElement("span");
        error.className = "error";
        error.textContent = job.error;
        li.append(error);
      }
      if (job.state === "done" && job.links) {
        const links = document.createElement("span");
        links.className = "links";
        for (const [key, text] of LINKS) {
          const href = safeHref(job.links[key]);
          if (!href) continue;
          const a = document.createElement("a");
          a.href = href;
          a.download = text;
          a.textContent = text;
          a.dataset.link = key;
          links.append(a);
        }
        if (links.children.length) li.append(links);
      }
      return li;
    });
    $("#jobs-list").replaceChildren(...items);
    $("#no-jobs").hidden = jobs.length > 0;
  }

  async function cancelJob(job) {
    if (cancelling.has(job.id)) return;
    cancelling.add(job.id);
    renderJobs();
    try {
      const resp = await send("DELETE", `/api/jobs/${encodeURIComponent(job.id)}`);
      if (resp.ok) {
        const cancelled = await resp.json().catch(() => null);
        note(jobsStatus, `Cancelled job ${job.id}`, "ok");
        if (cancelled && cancelled.id === job.id) {
          jobs = jobs.map((j) => (j.id === job.id ? cancelled : j));
          renderJobs();
        }
      } else {
        note(jobsStatus, `Could not cancel job ${job.id}: ${await errorDetail(resp)}`, "error");
      }
    } catch (err) {
      note(jobsStatus, `Could not cancel job ${job.id}: ${err.message}`, "error");
    } finally {
      cancelling.delete(job.id);
    }
    loadJobs(); // 409: it ended meanwhile; show how
  }

  loadUploads();
  loadJobs();
})();
