// The upload page: send an image or video, follow its job, show the plates.
"use strict";

const $ = (id) => document.getElementById(id);
let info = { max_upload_mb: Infinity, image_types: [], video_types: [] };

function say(text, failed = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", failed);
}

async function showCameras() {
  info = await (await fetch("/info")).json();
  const nav = $("cameras");
  nav.replaceChildren();
  for (const id of info.cameras) {
    const a = document.createElement("a");
    a.href = `/live/${encodeURIComponent(id)}`;
    a.textContent = `live: ${id}`;
    nav.append(a);
  }
}

// POST /upload with the upload's own progress (fetch cannot report it).
function send(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload");
    if (apiKey()) xhr.setRequestHeader("X-API-Key", apiKey());
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { $("progress").value = e.loaded / e.total; say(`Uploading ${file.name}`); }
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) resolve(body.job_id);
      else reject(new Error(`${xhr.status}: ${body.detail || xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error("upload failed (connection closed: too large?)"));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

async function follow(jobId) {
  for (;;) {
    const job = await (await api(`/extract/${jobId}`)).json();
    $("progress").value = job.progress;
    if (job.status === "failed") throw new Error(job.error);
    if (job.status === "done") return job;
    say(`${job.status === "queued" ? "Waiting" : "Reading"} ${job.filename}: ${Math.round(100 * job.progress)} %`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function showPlates(job) {
  const image = job.kind === "image";
  const head = image ? ["plate", "confidence", "region"] : ["plate", "confidence", "first seen", "last seen", "track"];
  const seen = (s) => `${s.offset.toFixed(2)} s (frame ${s.frame})`;
  const rows = image
    ? job.plates.map((p) => [p.text ?? `unreadable (best guess ${p.guess})`, p.confidence.toFixed(2), p.region ?? ""])
    : job.events.map((e) => [e.plate, e.confidence.toFixed(2), seen(e.first_seen), seen(e.last_seen), e.track_id]);
  $("plates").querySelector("thead").replaceChildren(row(head, "th"));
  $("plates").querySelector("tbody").replaceChildren(...rows.map((cells) => row(cells)));
  $("plates").hidden = false;
  const n = rows.length;
  say(`${job.filename}: ${n} ${image ? "plate" : "vehicle"}${n === 1 ? "" : "s"}`);
}

async function read(file) {
  const suffix = file.name.split(".").pop().toLowerCase();
  if (![...info.image_types, ...info.video_types].includes(suffix)) {
    return say(`${file.name}: not an accepted type (${[...info.image_types, ...info.video_types].join(", ")})`, true);
  }
  if (file.size > info.max_upload_mb * 2 ** 20) {
    return say(`${file.name}: larger than the ${info.max_upload_mb} MB limit`, true);
  }
  $("plates").hidden = $("annotated").hidden = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  try {
    const job = await follow(await send(file));
    if (job.kind === "image") {
      const blob = await (await api(`/extract/${job.job_id}/image`)).blob();
      URL.revokeObjectURL($("annotated").src);
      $("annotated").src = URL.createObjectURL(blob);
      $("annotated").hidden = false;
    }
    showPlates(job);
  } catch (e) {
    say(e.message, true);
  } finally {
    $("progress").hidden = true;
  }
}

keyField();
showHealth();
showCameras().catch((e) => say(e.message, true));
$("file").addEventListener("change", () => { if ($("file").files.length) read($("file").files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) read(e.dataTransfer.files[0]);
});
