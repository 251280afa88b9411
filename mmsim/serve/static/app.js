// mmsim search page: plain JavaScript over the JSON API, no build step.
"use strict";
const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("mmsim-token", params.get("token"));
const token = sessionStorage.getItem("mmsim-token");
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status, body });
  return body;
}

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

const selected = new Set();
let calibrated = false;
// the last search, so that the pager can ask for another page of the same ranking
let last = null; // { request: (offset, asOf) => [path, options], label, offset, topK, asOf, total }

function card(hit) {
  const div = document.createElement("div");
  div.className = "card" + (selected.has(hit.response_id) ? " selected" : "");
  div.dataset.id = hit.response_id;
  if (hit.modality === "image") {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = hit.path || "";
    // tiny images (icons, generated scenes) are scaled up with sharp pixels, not blur
    img.addEventListener("load", () => {
      if (img.naturalWidth < 128) img.style.imageRendering = "pixelated";
    });
    img.src = hit.path && hit.path.includes("://") ? hit.path : withToken(`api/items/${hit.response_id}/thumbnail`);
    if (hit.video) {
      // a moment of a video: its frame, its time; a click plays the video from there
      const shot = document.createElement("button");
      shot.type = "button";
      shot.className = "moment";
      shot.title = `play from ${momentTitle(hit.video)}`;
      const time = document.createElement("span");
      time.className = "timecode";
      time.textContent = momentLabel(hit.video);
      shot.append(img, time);
      shot.addEventListener("click", () => play(hit));
      div.appendChild(shot);
    } else {
      div.appendChild(img);
    }
  } else {
    const p = document.createElement("p");
    p.className = "text";
    p.textContent = hit.text;
    div.appendChild(p);
  }
  if (typeof hit.score === "number") {
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = hit.cosine !== undefined ? `${hit.score.toFixed(4)} · cos ${hit.cosine.toFixed(3)}` : hit.score.toFixed(3);
    div.appendChild(score);
  }
  if (typeof hit.p_match === "number") {
    const p = document.createElement("div");
    p.className = "p-match" + (hit.match ? " match" : "");
    p.textContent = `P(match) ${hit.p_match.toFixed(2)}${hit.match ? " · match" : ""}`;
    div.appendChild(p);
  }
  if (hit.found_by) {
    const found = document.createElement("div");
    found.className = "found";
    const names = { vector: "meaning", keyword: "words" };
    found.textContent = "found by " + Object.entries(hit.found_by).map(([k, r]) => `${names[k] || k} #${r}`).join(", ");
    div.appendChild(found);
  }
  if (hit.path) {
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = hit.path.split(/[\\/]/).pop();
    name.title = hit.path;
    div.appendChild(name);
  }
  const meta = Object.entries(hit.metadata || {})
    .filter(([k]) => k !== "name")
    .map(([k, v]) => `${k}: ${v}`).join(" · ");
  if (meta) {
    const info = document.createElement("div");
    info.className = "path";
    info.textContent = meta;
    div.appendChild(info);
  }
  const more = document.createElement("button");
  more.className = "small";
  more.textContent = "More like this";
  more.addEventListener("click", () => similar([hit.response_id]));
  div.appendChild(more);
  const pick = document.createElement("label");
  pick.className = "pick";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "select";
  box.checked = selected.has(hit.response_id);
  box.addEventListener("change", () => {
    if (box.checked) selected.add(hit.response_id); else selected.delete(hit.response_id);
    div.classList.toggle("selected", box.checked);
    showSelection();
  });
  pick.append(box, "select");
  div.appendChild(pick);
  return div;
}

function showSelection() {
  $("selection").hidden = selected.size === 0;
  $("more-like-selected").textContent = `More like the ${selected.size} selected`;
}

// the options every search shares, as [name, value] pairs
function options() {
  const pairs = [["top_k", $("top-k").value || "20"]];
  const add = (name, value) => { if (value) pairs.push([name, value]); };
  add("where", $("where").value.trim());
  add("sort", $("sort").value.trim());
  add("matches_only", $("matches-only").checked ? "true" : "");
  add("group", $("group").value === "frames" ? "" : $("group").value);
  return pairs;
}

// -- moments of videos: the player --------------------------------------------------
function clock(seconds) {
  // a short time for a badge: 0:07, 1:02:03.5 (the full timecode is in its title)
  const t = Math.round(seconds * 10) / 10;
  const whole = Math.floor(t);
  const tenth = Math.round((t - whole) * 10);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
  const two = (n) => String(n).padStart(2, "0");
  return `${h ? `${h}:${two(m)}` : m}:${two(s)}${tenth ? "." + tenth : ""}`;
}

function momentLabel(v) {
  return typeof v.start === "number" ? `${clock(v.start)}–${clock(v.end)}` : clock(v.time);
}

function momentTitle(v) {
  return typeof v.start === "number" ? `${v.start_timecode}–${v.end_timecode} (best at ${v.timecode})` : v.timecode;
}

// what the player shows: the hit, where to start, where the segment ends (null: a frame)
let playing = null; // { id, time, start, end, stopAt }
let maxClip = Infinity; // the longest clip the service cuts (its OpenAPI document says)

function clipSpan(v) {
  // the segment, or (longer than the service cuts) a window of it around its best frame,
  // as the service cuts a segment it grows itself
  if (v.end - v.start <= maxClip) return [v.start, v.end];
  const first = Math.min(Math.max(v.time - maxClip / 2, v.start), v.end - maxClip);
  return [first, first + maxClip];
}

function play(hit) {
  const v = hit.video;
  const grouped = typeof v.start === "number";
  playing = { id: hit.response_id, time: v.time, start: grouped ? v.start : v.time, end: grouped ? v.end : null };
  playing.stopAt = playing.end; // a segment plays to its end, then pauses (once)
  const video = $("video");
  $("player").hidden = false;
  const name = (hit.path || "").split(/[\\/]/).pop();
  $("player-info").textContent = grouped
    ? `${name} · segment ${v.start_timecode}–${v.end_timecode} (${v.frames} frame${v.frames === 1 ? "" : "s"}), best at ${v.timecode}`
    : `${name} · ${v.timecode}`;
  // the clip: the segment, or (a single frame) the one the service grows around it
  const [from, to] = grouped ? clipSpan(v) : [];
  const span = grouped ? `?start=${from}&end=${to}` : "";
  $("save-clip").href = withToken(`api/items/${hit.response_id}/clip${span}`);
  $("timeline").hidden = true; // drawn once the duration is known
  video.src = withToken(`api/items/${hit.response_id}/video`) + `#t=${playing.start}`;
  $("player").scrollIntoView({ block: "nearest" });
}

function drawTimeline() {
  const video = $("video");
  if (!playing || !(video.duration > 0)) return;
  const at = (t) => `${(100 * Math.min(Math.max(t / video.duration, 0), 1)).toFixed(3)}%`;
  const segment = $("segment");
  segment.hidden = playing.end === null;
  if (playing.end !== null) {
    segment.style.left = at(playing.start);
    segment.style.width = `calc(${at(playing.end - playing.start)} + 2px)`;
  }
  $("moment-mark").style.left = at(playing.time);
  $("playhead").style.left = at(video.currentTime);
  $("timeline").hidden = false;
}

function stopAtEnd(time) {
  // a segment pauses at its end (once): checked on every frame shown where the browser
  // says when (requestVideoFrameCallback), else on timeupdate (about 4 times a second)
  const video = $("video");
  if (playing && playing.stopAt !== null && time >= playing.stopAt) {
    playing.stopAt = null;
    video.pause();
  }
}

function watchFrames() {
  const video = $("video");
  if (!("requestVideoFrameCallback" in video)) return;
  const shown = playing;
  video.requestVideoFrameCallback(function check(_, frame) {
    if (playing !== shown || playing.stopAt === null) return;
    stopAtEnd(frame.mediaTime);
    video.requestVideoFrameCallback(check);
  });
}

$("video").addEventListener("loadedmetadata", () => {
  const video = $("video");
  video.currentTime = playing.start; // (the #t= fragment asks for it too; some players ignore it)
  drawTimeline();
  watchFrames();
  video.play().catch(() => {}); // a browser may want a click on play first
});
$("video").addEventListener("timeupdate", () => {
  stopAtEnd($("video").currentTime);
  drawTimeline();
});
$("video").addEventListener("error", () => {
  if (playing) status(`the video cannot be played here (${$("video").error.message || "unsupported"}); save the clip instead`, true);
});
$("timeline").addEventListener("click", (event) => {
  const video = $("video");
  const box = $("timeline").getBoundingClientRect();
  if (video.duration > 0) video.currentTime = ((event.clientX - box.left) / box.width) * video.duration;
});
function closePlayer() {
  const video = $("video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  playing = null;
  $("player").hidden = true;
}
$("close-player").addEventListener("click", closePlayer);
// from the keyboard: Escape in the player closes it, and focus goes back to the moment
// that opened it (the video's own controls seek and pause from the keyboard)
$("player").addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !playing) return;
  const opener = document.querySelector(`.card[data-id='${playing.id}'] .moment`);
  closePlayer();
  if (opener) opener.focus();
});

function getRequest(base) {
  // base: URLSearchParams of the query itself; the options are fixed when the search
  // starts, so the pager asks for more of the same ranking; paging adds offset and as_of
  const fixed = options();
  return (offset, asOf) => {
    const q = new URLSearchParams(base);
    for (const [k, v] of fixed) q.append(k, v);
    if (offset) q.set("offset", String(offset));
    if (asOf !== null && asOf !== undefined) q.set("as_of", String(asOf));
    return [`api/search?${q}`, {}];
  };
}

async function run(request, label, offset = 0, asOf = null) {
  status("searching…");
  const started = performance.now();
  const [path, opts] = request(offset, asOf);
  try {
    const result = await api(path, opts);
    const grid = $("results");
    grid.replaceChildren(...result.hits.map(card));
    const ms = Math.round(performance.now() - started);
    last = { request, label, offset: result.offset, topK: result.top_k, asOf: result.as_of, total: result.total, exact: result.total_exact, next: result.next_offset };
    const shown = result.hits.length ? `${result.offset + 1}–${result.offset + result.hits.length}` : "0";
    const of = result.total_exact ? `${result.total}` : `at least ${result.total}`;
    status(`${shown} of ${of} results for ${label} (${ms} ms)`);
    showPager();
  } catch (err) {
    $("results").replaceChildren();
    $("pager").hidden = true;
    status(err.message, true);
  }
}

function showPager() {
  const pager = $("pager");
  pager.hidden = !last || (last.offset === 0 && last.next === null);
  if (pager.hidden) return;
  const page = Math.floor(last.offset / last.topK) + 1;
  const pages = last.exact ? Math.max(1, Math.ceil(last.total / last.topK)) : "?";
  $("page-info").textContent = `page ${page} of ${pages}`;
  $("prev").disabled = last.offset === 0;
  $("next").disabled = last.next === null;
}

$("next").addEventListener("click", () => last && last.next !== null && run(last.request, last.label, last.next, last.asOf));
$("prev").addEventListener("click", () => last && run(last.request, last.label, Math.max(0, last.offset - last.topK), last.asOf));

function similar(ids) {
  const base = new URLSearchParams();
  for (const id of ids) base.append("q", `item:${id}`);
  const negative = $("negative").value.trim();
  if (negative) base.append("negative", negative);
  const label = ids.length === 1 ? `items like #${ids[0]}` : `items like #${ids.join(", #")}`;
  run(getRequest(base), label);
}

$("more-like-selected").addEventListener("click", () => similar([...selected]));
$("clear-selection").addEventListener("click", () => {
  selected.clear();
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  document.querySelectorAll(".card input.select").forEach((b) => { b.checked = false; });
  showSelection();
});

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("query").value;
  const mode = $("mode").value;
  const base = new URLSearchParams();
  if (mode === "keyword") base.set("keywords", q); else base.append("q", q);
  if (mode !== "vector") base.set("mode", mode);
  const negative = $("negative").value.trim();
  if (negative && mode !== "keyword") base.append("negative", negative);
  run(getRequest(base), negative && mode !== "keyword" ? `“${q}” but not “${negative}”` : `“${q}”`);
});

function searchImage(file) {
  const fixed = options();
  const negative = $("negative").value.trim();
  const request = (offset, asOf) => {
    const form = new FormData();
    form.append("file", file);
    for (const [k, v] of fixed) form.append(k, v);
    if (negative) form.append("negative", negative);
    if (offset) form.append("offset", String(offset));
    if (asOf !== null && asOf !== undefined) form.append("as_of", String(asOf));
    return ["api/search/image", { method: "POST", body: form }];
  };
  run(request, file.name);
}

$("image-file").addEventListener("change", (e) => e.target.files[0] && searchImage(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) searchImage(e.dataTransfer.files[0]);
});

$("match-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("file", $("match-file").files[0]);
  form.append("caption", $("match-caption").value);
  const out = $("match-result");
  try {
    const r = await api("api/match", { method: "POST", body: form });
    out.className = "";
    out.textContent = `${r.match ? "Match" : "No match"}: P(match) = ${r.p_match.toFixed(3)} (score ${r.score.toFixed(3)}, threshold “${r.threshold}”)`;
  } catch (err) {
    out.className = "error";
    out.textContent = err.message;
  }
});

async function ready() {
  // the service answers before its model is loaded: 503 from /api/health/ready until it is
  for (;;) {
    try {
      return await api("api/health/ready");
    } catch (err) {
      // a failed load stays failed: show why instead of waiting for ever
      if (err.status !== 503 || (err.body && err.body.state === "failed")) throw err;
      status(err.message);
      await new Promise((wake) => setTimeout(wake, 500));
    }
  }
}

function takeLimits(doc) {
  // the inputs refuse what the API would: the limits come from its OpenAPI document
  // an optional parameter's schema is anyOf [its type, null] plus keywords beside it
  const typed = (schema) => Object.assign({}, schema, (schema.anyOf || []).find((s) => s.type !== "null"));
  const search = Object.fromEntries(doc.paths["/api/search"].get.parameters.map((p) => [p.name, typed(p.schema)]));
  const text = search.q.items;
  for (const id of ["query", "negative", "match-caption"]) {
    $(id).maxLength = text.maxLength;
    $(id).pattern = ".*\\S.*"; // not only spaces
  }
  $("where").maxLength = search.where.maxLength;
  $("top-k").max = search.top_k.maximum;
  maxClip = doc.paths["/api/items/{item_id}/clip"].get["x-max-seconds"];
}

ready()
  .then(() => {
    status("");
    return Promise.all([api("api/info"), api("openapi.json")]);
  })
  .then(([info, doc]) => {
    takeLimits(doc);
    $("sort").title = `relevance, or a column (a leading - for descending): ${info.metadata_columns.join(", ")}`;
    const enc = info.encoders.image_encoder;
    calibrated = Boolean(info.matcher && info.matcher.calibrated);
    $("matches-only").disabled = !calibrated;
    if (!calibrated) $("matches-only").parentElement.title = "the index's matcher has no calibrated threshold: run `mmsim index calibrate`";
    const videos = info.videos ? `, ${info.frames} frames of ${info.videos} videos` : "";
    $("group-choice").hidden = !info.videos;
    $("summary").textContent = `${info.items} items (${info.images} images, ${info.texts} texts${videos}) · ${enc.name} ${enc.checkpoint || ""} · ${info.ann ? info.ann.backend : "exact search"}`;
  })
  .catch((err) => status(err.message, true));
