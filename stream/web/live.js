// A camera's live page: its annotated frames (MJPEG) and the plates as they are published.
"use strict";

const camera = decodeURIComponent(location.pathname.split("/")[2]);
const base = `/live/${encodeURIComponent(camera)}`;
const KEEP = 50; // rows shown
let after = 0; // seq of the newest plate shown

function showStream() {
  // An <img> cannot send headers: the key goes in the query.
  const key = apiKey() ? `?api_key=${encodeURIComponent(apiKey())}` : "";
  document.getElementById("stream").src = `${base}/stream.mjpg${key}`;
}

async function poll() {
  try {
    const { plates } = await (await api(`${base}/plates?after=${after}`)).json();
    const body = document.querySelector("#plates tbody");
    for (const e of plates) {
      body.prepend(row([e.last_seen.time, e.plate, e.confidence.toFixed(2), e.type]));
      after = Math.max(after, e.seq);
    }
    while (body.rows.length > KEEP) body.lastElementChild.remove();
    // the last frame stays up when a file camera ends or a camera fails: say so beside its name
    const state = ((await (await fetch("/health")).json()).cameras[camera] || {});
    const note = state.state && state.state !== "streaming"
      ? ` (${state.state}${state.last_error ? ": " + state.last_error : ""})` : "";
    document.getElementById("camera").textContent = camera + note;
    document.getElementById("status").textContent = "";
  } catch (e) {
    document.getElementById("status").textContent = e.message;
  }
  setTimeout(poll, 1000);
}

document.getElementById("camera").textContent = camera;
document.title = `ALPR: ${camera}`;
keyField(showStream);
showStream();
showHealth();
poll();
