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
    div.appendChild(img);
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
  return pairs;
}

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
    $("summary").textContent = `${info.items} items (${info.images} images, ${info.texts} texts) · ${enc.name} ${enc.checkpoint || ""} · ${info.ann ? info.ann.backend : "exact search"}`;
  })
  .catch((err) => status(err.message, true));
