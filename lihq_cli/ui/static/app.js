// The LIHQ page: a form built from /api/knobs, uploads, CreateRender, progress over server-sent events,
// progressive HLS playback (hls.js), download, list and cancel. Talks only to this page's own server,
// which holds the API token and calls RenderService.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const MINE_SHOWN = 20; // this page's newest renders, shown first on every refresh (one GetRender each)
const state = { extras: [], current: null, source: null, hls: null, playerFor: null, nextPage: "", mine: [] };
const ERR_ALIAS = { speech: "audio", text: "audio" };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c);
  return e;
}

// -- the form ------------------------------------------------------------------------------------
function knobInput(k) {
  const id = "f-" + k.name;
  switch (k.kind) {
    case "file": return el("input", { type: "file", id, name: k.name, accept: k.accept || "" });
    case "textarea": return el("textarea", { id, name: k.name });
    case "bool": return el("input", { type: "checkbox", id, name: k.name });
    case "number": return el("input", { type: "number", id, name: k.name, min: k.min, max: k.max, step: k.step || "any", placeholder: "0" });
    case "select": {
      const s = el("select", { id, name: k.name });
      for (const c of k.choices) s.append(el("option", { value: c }, c === "" ? "(default)" : c));
      return s;
    }
    case "pads": {
      const d = el("div", { class: "pads" });
      [["top", 0], ["bottom", 20], ["left", 0], ["right", 0]].forEach(([side, v]) =>
        d.append(el("input", { type: "number", id: "f-pad_" + side, min: 0, max: 128, step: 1, value: v, title: side })));
      return d;
    }
    case "background": {
      const d = el("div", { class: "background" });
      const kind = el("select", { id: "f-background-kind" });
      for (const c of ["none", "color", "image", "video"]) kind.append(el("option", { value: c }, c));
      d.append(kind,
        el("input", { type: "text", id: "f-background-color", placeholder: "#00ff00 or green" }),
        el("input", { type: "file", id: "f-background-file", accept: "image/*,video/*" }),
        el("label", {}, "video offset (s) ", el("input", { type: "number", id: "f-background-video_offset_s", min: 0, step: "0.1", placeholder: "0" })),
        el("label", {}, "speaker scale ", el("input", { type: "number", id: "f-background-speaker_scale", min: 0.1, max: 4, step: "0.05", placeholder: "1" })),
        el("label", {}, "speaker offset x/y (px) ", el("input", { type: "number", id: "f-background-offset_x", step: 1, placeholder: "0" }),
          el("input", { type: "number", id: "f-background-offset_y", step: 1, placeholder: "0" })),
        el("label", {}, "rotation (°) ", el("input", { type: "number", id: "f-background-rotation_deg", step: 1, placeholder: "0" })));
      return d;
    }
    default: return el("input", { type: "text", id, name: k.name });
  }
}

async function buildForm() {
  const r = await fetch("/api/knobs");
  const data = await r.json();
  $("#address").textContent = data.address;
  const box = $("#knobs");
  state.extras = data.knobs.filter((k) => k.extra);
  for (const k of data.knobs) {
    const input = knobInput(k);
    const label = el("label", { for: input.id || "" }, k.label);
    box.append(el("div", { class: "knob", id: "knob-" + k.name }, label, input,
      el("p", { class: "help" }, k.help), el("p", { class: "err", id: "err-" + k.name })));
  }
}

function clearErrors() {
  document.querySelectorAll(".err").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll(".knob.bad").forEach((e) => e.classList.remove("bad"));
}

function showErrors(fields, fallback) {
  let shown = false;
  for (const [field, msgs] of Object.entries(fields || {})) {
    const name = ERR_ALIAS[field] || field;
    const target = document.getElementById("err-" + name) || $("#err-form");
    target.textContent = (target.textContent ? target.textContent + "\n" : "") + msgs.join("\n");
    const knob = document.getElementById("knob-" + name);
    if (knob) knob.classList.add("bad");
    shown = true;
  }
  if (!shown && fallback) $("#err-form").textContent = fallback;
}

function uploadFile(file, field) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/api/uploads?filename=${encodeURIComponent(file.name)}&field=${encodeURIComponent(field)}`);
    xhr.setRequestHeader("X-LIHQ-UI", "1");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $("#upload-status").textContent = `uploading ${field}: ${Math.round(100 * e.loaded / e.total)} %`;
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: xhr.responseText }; }
      if (xhr.status === 200) resolve({ key: body.key });
      else reject(body);
    };
    xhr.onerror = () => reject({ error: `uploading ${field}: the page's server did not answer` });
    xhr.send(file);
  });
}

const val = (id) => { const e = document.getElementById(id); return e ? e.value.trim() : ""; };
const checked = (id) => { const e = document.getElementById(id); return !!(e && e.checked); };
const fileOf = (id) => { const e = document.getElementById(id); return e && e.files && e.files[0]; };

async function buildSpec() {
  const spec = {};
  const face = fileOf("f-face");
  if (!face) throw { fields: { face: ["choose a face image or video"] } };
  spec.face = await uploadFile(face, "face");
  const audio = fileOf("f-audio");
  if (audio) spec.audio = await uploadFile(audio, "audio");
  else if (val("f-text")) spec.text = val("f-text");
  const ref = fileOf("f-reference_video");
  if (ref) spec.reference_video = await uploadFile(ref, "reference_video");
  for (const name of ["voice", "tts_backend", "motion", "wav2lip_checkpoint", "gfpgan_version"]) {
    if (val("f-" + name)) spec[name] = val("f-" + name);
  }
  for (const name of ["passes", "upscale", "interpolate", "segment_frames", "seed"]) {
    if (val("f-" + name) !== "") spec[name] = Number(val("f-" + name));
  }
  for (const name of ["reference_offset_s", "draft_seconds"]) {
    if (val("f-" + name) !== "") spec[name] = Number(val("f-" + name));
  }
  for (const name of ["reference_offset_random", "keep_lips", "background_upsampler", "paste_back"]) {
    if (checked("f-" + name)) spec[name] = true;
  }
  for (const side of ["top", "bottom", "left", "right"]) {
    if (val("f-pad_" + side) !== "") spec["pad_" + side] = Number(val("f-pad_" + side));
  }
  const kind = val("f-background-kind");
  if (kind && kind !== "none") {
    const bg = {};
    if (kind === "color") bg.color = val("f-background-color");
    else {
      const f = fileOf("f-background-file");
      if (!f) throw { fields: { background: [`choose a background ${kind} file`] } };
      bg[kind] = await uploadFile(f, "background");
    }
    for (const name of ["video_offset_s", "speaker_scale", "offset_x", "offset_y", "rotation_deg"]) {
      if (val("f-background-" + name) !== "") bg[name] = Number(val("f-background-" + name));
    }
    spec.background = bg;
  }
  for (const k of state.extras) {  // newer scalar fields of the server's RenderSpec
    if (k.kind === "bool") { if (checked("f-" + k.name)) spec[k.name] = true; }
    else if (val("f-" + k.name) !== "") spec[k.name] = k.kind === "number" ? Number(val("f-" + k.name)) : val("f-" + k.name);
  }
  return spec;
}

async function submit(ev) {
  ev.preventDefault();
  clearErrors();
  $("#submit").disabled = true;
  try {
    const spec = await buildSpec();
    $("#upload-status").textContent = "creating the render…";
    const r = await fetch("/api/renders", {
      method: "POST", headers: { "Content-Type": "application/json", "X-LIHQ-UI": "1" },
      body: JSON.stringify({ spec, idempotency_key: "ui-" + Date.now() + "-" + Math.random().toString(16).slice(2) }),
    });
    const body = await r.json();
    if (!r.ok) throw body;
    $("#upload-status").textContent = "";
    remember(body.renders.map((x) => x.render_id));
    openRender(body.renders[0]);
    refreshList();
  } catch (e) {
    $("#upload-status").textContent = "";
    showErrors(e.fields, e.error || String(e));
  } finally {
    $("#submit").disabled = false;
  }
}

// -- one render --------------------------------------------------------------------------------------
function fmtEta(s) {
  if (!s) return "";
  return s >= 60 ? `ETA ${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `ETA ${Math.round(s)} s`;
}

function showRender(r) {
  state.current = r;
  $("#render-id").textContent = r.render_id;
  const st = $("#state");
  st.textContent = r.state + (r.queue_position ? ` (queue #${r.queue_position})` : "");
  st.className = "state " + r.state;
  const box = $("#progress");
  box.textContent = "";
  for (const p of r.progress) {
    const bar = el("progress", { max: p.total || 1, value: p.done });
    box.append(el("div", { class: "stage", "data-stage": p.stage }, el("span", {}, p.stage), bar, el("span", {}, `${p.done}/${p.total}`)));
  }
  $("#eta").textContent = r.state === "RUNNING" || r.state === "QUEUED" ? fmtEta(r.eta_s) : "";
  $("#first-playable").textContent = r.first_playable_s ? `first segment playable after ${r.first_playable_s.toFixed(1)} s` : "";
  const finished = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(r.state);
  $("#cancel").classList.toggle("hidden", finished);
  const dl = $("#download");
  dl.classList.toggle("hidden", !(r.state === "SUCCEEDED" && r.output));
  dl.href = `/api/renders/${r.render_id}/files/output.mp4?download=1`;
  $("#render-error").textContent = r.error ? `${r.error_code || "error"} at ${r.error_stage || "?"}: ${r.error}` : "";
  if (r.error) { clearErrors(); showErrors(r.error_fields); }
  if (r.playlist && state.playerFor !== r.render_id) attachPlayer(r.render_id);
}

function attachPlayer(id) {
  const video = $("#player");
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  state.playerFor = id;
  const url = `/api/renders/${id}/files/hls/index.m3u8`;
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({ startPosition: 0, manifestLoadingMaxRetry: 6, levelLoadingMaxRetry: 6 });
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    state.hls = hls;
  } else {
    video.src = url;
    video.play().catch(() => {});
  }
}

function openRender(r) {
  if (state.source) state.source.close();
  if (state.playerFor !== r.render_id) {
    if (state.hls) { state.hls.destroy(); state.hls = null; }
    state.playerFor = null;
    $("#player").removeAttribute("src");
  }
  showRender(r);
  const es = new EventSource(`/api/renders/${r.render_id}/events`);
  let last = r.state;
  es.addEventListener("render", (e) => {
    const cur = JSON.parse(e.data);
    showRender(cur);
    if (cur.state !== last) { last = cur.state; refreshList(); }
  });
  es.addEventListener("failure", (e) => { $("#render-error").textContent = JSON.parse(e.data).error; });
  es.addEventListener("end", () => es.close());
  state.source = es;
}

async function cancelRender(id) {
  const r = await fetch(`/api/renders/${id}/cancel`, { method: "POST", headers: { "X-LIHQ-UI": "1" } });
  const body = await r.json();
  if (!r.ok) { $("#render-error").textContent = body.error; return; }
  if (state.current && state.current.render_id === id) showRender(body);
  refreshList();
}

// -- the list ------------------------------------------------------------------------------------------
function listRow(r) {
  const done = r.progress.reduce((a, p) => a + p.done, 0), total = r.progress.reduce((a, p) => a + p.total, 0);
  const open = el("button", { type: "button", class: "open secondary", "data-id": r.render_id }, "open");
  open.onclick = () => openRender(r);
  const actions = el("td", {}, open);
  if (r.state === "QUEUED" || r.state === "RUNNING") {
    const c = el("button", { type: "button", class: "cancel", "data-id": r.render_id }, "cancel");
    c.onclick = () => cancelRender(r.render_id);
    actions.append(" ", c);
  }
  return el("tr", { "data-id": r.render_id, "data-state": r.state }, el("td", {}, el("code", {}, r.render_id)),
    el("td", {}, r.state), el("td", {}, `${done}/${total}`), el("td", {}, r.created_at), actions);
}

// Renders created on this page lead the list (newest first); a refresh reads each one, so only the
// newest MINE_SHOWN are kept: the rest are in ListRenders' pages like anyone's.
function remember(ids) {
  state.mine.unshift(...ids);
  state.mine.length = Math.min(state.mine.length, MINE_SHOWN);
}

async function refreshList(more = false) {
  const token = more ? state.nextPage : "";
  const r = await fetch(`/api/renders?page_size=20&page_token=${encodeURIComponent(token)}`);
  const body = await r.json();
  const tbody = $("#renders tbody");
  if (!r.ok) { tbody.textContent = ""; tbody.append(el("tr", {}, el("td", { colspan: 5, class: "err" }, body.error))); return; }
  if (!more) {
    // ListRenders pages in creation order (oldest first): this page's own renders lead the list, fresh
    tbody.textContent = "";
    const mine = await Promise.all(state.mine.map(async (id) => {
      const m = await fetch(`/api/renders/${id}`);
      return m.ok ? m.json() : null;
    }));
    for (const x of mine) if (x) tbody.append(listRow(x));
  }
  for (const x of body.renders) if (!state.mine.includes(x.render_id)) tbody.append(listRow(x));
  state.nextPage = body.next_page_token;
  $("#more").classList.toggle("hidden", !state.nextPage);
}

window.addEventListener("DOMContentLoaded", async () => {
  await buildForm();
  $("#render-form").addEventListener("submit", submit);
  $("#cancel").onclick = () => state.current && cancelRender(state.current.render_id);
  $("#refresh").onclick = () => refreshList();
  $("#more").onclick = () => refreshList(true);
  refreshList();
  document.body.dataset.ready = "1";
});
