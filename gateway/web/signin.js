// pitchside viewer: signing in to a gateway that asks for a token (PITCHSIDE_TOKEN).
// Loaded before viewer.js and uploads.js. The first answer 401 (or a WebSocket closed with
// 4401) opens the sign-in dialog once; the token goes to POST /api/session, which sets an
// HttpOnly session cookie that every later request and WebSocket carries by itself. The token
// is never kept by this page: not in a URL, not in storage, not in a variable after sign-in.
// A request that got 401 is sent again once signed in. With a viewer token the page is
// read-only (body.read-only hides the controls; the gateway refuses them anyway).
// window.pitchsideAuth: {signIn(), role, prompts} (prompts: how often the dialog opened).
"use strict";

(() => {
  const rawFetch = window.fetch.bind(window);
  const state = { role: null, prompts: 0, pending: null };

  function applyRole(role) {
    state.role = role;
    document.body.classList.toggle("read-only", role === "viewer");
  }

  function isSessionCall(input, init) {
    const url = typeof input === "string" ? input : input.url;
    const method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    return new URL(url, location.href).pathname === "/api/session" && method !== "GET";
  }

  // Opens the dialog (once however many callers wait) and resolves when signed in.
  function signIn() {
    if (state.pending) return state.pending;
    const dialog = document.getElementById("signin");
    const form = document.getElementById("signin-form");
    const input = document.getElementById("signin-token");
    const error = document.getElementById("signin-error");
    state.prompts += 1;
    state.pending = new Promise((resolve) => {
      error.hidden = true;
      error.textContent = "";
      form.onsubmit = async (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        const button = form.querySelector("button");
        button.disabled = true;
        try {
          const resp = await rawFetch("/api/session", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ token }),
            cache: "no-store",
          });
          if (resp.ok) {
            input.value = "";
            applyRole((await resp.json()).role);
            dialog.close();
            state.pending = null;
            resolve(state.role);
            return;
          }
          error.textContent = resp.status === 401
            ? "That token is not valid."
            : `Cannot sign in (${resp.status} ${resp.statusText}).`;
        } catch (_) {
          error.textContent = "Cannot reach the gateway; try again.";
        } finally {
          button.disabled = false;
        }
        error.hidden = false;
        input.select();
      };
      dialog.oncancel = (ev) => ev.preventDefault(); // nothing works until signed in
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
    return state.pending;
  }

  window.fetch = async (input, init) => {
    const resp = await rawFetch(input, init);
    if (resp.status !== 401 || isSessionCall(input, init)) return resp;
    await signIn();
    return rawFetch(input, init); // bodies here are strings or FormData: sent again as they are
  };

  window.pitchsideAuth = {
    signIn,
    get role() { return state.role; },
    get prompts() { return state.prompts; },
  };

  // Who this page is, so that a viewer token's page hides the controls from the start.
  rawFetch("/api/session", { cache: "no-store" })
    .then(async (resp) => {
      if (resp.ok) applyRole((await resp.json()).role);
      else if (resp.status === 401) await signIn();
    })
    .catch(() => {});
})();
