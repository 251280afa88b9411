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
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function card(hit) {
  const div = document.createElement("div");
  div.className = "card";
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
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  div.appendChild(score);
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
  more.addEventListener("click", () => run(`api/search/similar?id=${hit.response_id}&${common()}`, {}, `items like #${hit.response_id}`));
  div.appendChild(more);
  return div;
}

function common() {
  const q = new URLSearchParams({ top_k: $("top-k").value || "20" });
  if ($("where").value.trim()) q.set("where", $("where").value.trim());
  return q.toString();
}

async function run(path, options, label) {
  status("searching…");
  const started = performance.now();
  try {
    const result = await api(path, options);
    const grid = $("results");
    grid.replaceChildren(...result.hits.map(card));
    const ms = Math.round(performance.now() - started);
    status(`${result.hits.length} results for ${label} (${ms} ms)`);
  } catch (err) {
    $("results").replaceChildren();
    status(err.message, true);
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("query").value;
  run(`api/search?q=${encodeURIComponent(q)}&${common()}`, {}, `“${q}”`);
});

function searchImage(file) {
  const form = new FormData();
  form.append("file", file);
  form.append("top_k", $("top-k").value || "20");
  if ($("where").value.trim()) form.append("where", $("where").value.trim());
  run("api/search/image", { method: "POST", body: form }, file.name);
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

api("api/info").then((info) => {
  const enc = info.encoders.image_encoder;
  $("summary").textContent = `${info.items} items (${info.images} images, ${info.texts} texts) · ${enc.name} ${enc.checkpoint || ""} · ${info.ann ? info.ann.backend : "exact search"}`;
}).catch((err) => status(err.message, true));
