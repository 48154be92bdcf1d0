// Shared by the pages: the API key (kept in this browser) and calls to the API.
"use strict";

const KEY = "alpr-api-key";
const apiKey = () => localStorage.getItem(KEY) || "";

// The key field in the header; onChange runs after the user changes the key. Kept as it is
// typed ("input"), not when the field loses focus: a click on Read right after typing uses it.
function keyField(onChange) {
  const field = document.getElementById("key");
  field.value = apiKey();
  field.addEventListener("input", () => localStorage.setItem(KEY, field.value.trim()));
  field.addEventListener("change", () => { if (onChange) onChange(); });
}

// fetch with the key; resolves to the response, rejects with the API's one-line `detail`.
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("X-API-Key", apiKey());
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    if (response.status === 401) {  // point at the field that fixes it
      document.getElementById("key")?.focus();
      detail += " (enter the API key in the field at the top)";
    }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

// A table row of plain-text cells (never HTML: plate texts come from the network).
function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement(tag);
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

// The page's status line (#health): each camera's state and frame rate from /health (open,
// no key), every 5 s; red, with the reasons, while one is down.
async function showHealth() {
  const line = document.getElementById("health");
  try {
    const health = await (await fetch("/health")).json(); // 503 also has the body
    const cameras = Object.entries(health.cameras).map(([id, c]) =>
      `${id}: ${c.state}${c.state === "streaming" ? `, ${c.fps} fps` : ""}${!c.ok && c.last_error ? ` (${c.last_error})` : ""}`);
    line.textContent = [health.error, ...cameras].filter(Boolean).join(" · ");
    line.classList.toggle("error", !health.ok);
  } catch (e) {
    line.textContent = "the server does not answer";
    line.classList.add("error");
  }
  setTimeout(showHealth, 5000);
}
