// The plate history: the journal searched by plate (fuzzy), camera and time of first sight,
// newest first, a page at a time; an event's details with its crops.
"use strict";

const $ = (id) => document.getElementById(id);
let query = ""; // the filters of the rows shown (the "More" button's)
let next = null; // the `after` of the next page; null: no more
let urls = []; // object URLs of the thumbnails shown, freed with their rows
let shown = null; // the event in the detail view

function say(text, failed = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", failed);
}

// The form as query parameters; its times are the browser's local ones, sent as UTC.
function filters() {
  const p = new URLSearchParams();
  const plate = $("plate").value.trim(), camera = $("camera").value.trim();
  if (plate) { p.set("plate", plate); p.set("max_distance", $("max_distance").value); }
  if (camera) p.set("camera", camera);
  for (const name of ["since", "until"]) if ($(name).value) p.set(name, new Date($(name).value).toISOString());
  return p;
}

// An event's image as an object URL: fetched with the key, which an <img> cannot send.
async function imageUrl(eventId, name) {
  return URL.createObjectURL(await (await api(`/events/${encodeURIComponent(eventId)}/${name}.jpg`)).blob());
}

function addRows(events, images) {
  const body = $("events").tBodies[0];
  for (const e of events) {
    const names = images[e.event_id] || [];
    const tr = row([e.plate, "", e.camera_id, e.first_seen.time, e.confidence.toFixed(2), e.type]);
    if (names.includes("crop")) {
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = `crop of ${e.plate}`;
      tr.cells[1].append(img);
      imageUrl(e.event_id, "crop").then((url) => { urls.push(url); img.src = url; }, () => img.remove());
    }
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "details";
    button.addEventListener("click", () => detail(e, names));
    tr.insertCell().append(button);
    body.append(tr);
  }
}

async function search(more = false) {
  const p = more ? new URLSearchParams(query) : filters();
  if (more) p.set("after", next);
  try {
    const found = await (await api(`/events?${p}`)).json();
    if (!more) {
      $("events").tBodies[0].replaceChildren();
      urls.forEach(URL.revokeObjectURL);
      urls = [];
      query = p.toString();
    }
    addRows(found.events, found.images);
    next = found.next;
    $("more").hidden = next === null;
    const n = $("events").tBodies[0].rows.length;
    say(n ? `${n} event${n === 1 ? "" : "s"}${next === null ? "" : ", more older ones"}` : "no events");
  } catch (e) {
    say(e.message, true);
  }
}

function detail(e, names) {
  shown = e.event_id;
  $("detail-plate").textContent = e.plate;
  const fields = [
    ["event", e.event_id], ["seq", e.seq], ["type", e.corrects ? `${e.type} of ${e.corrects}` : e.type],
    ["camera", e.camera_id], ["first seen (UTC)", e.first_seen.time], ["last seen (UTC)", e.last_seen.time],
    ["confidence", e.confidence.toFixed(2)], ["reads", e.reads],
    ["candidates", (e.candidates || []).map((c) => `${c.text} ${c.score.toFixed(2)}`).join(", ")],
    ["format", e.region ?? ""], ["country", [e.country, e.subdivision].filter(Boolean).join(" ")],
    ["track", e.track_id],
  ];
  $("detail-fields").replaceChildren(...fields.flatMap(([name, value]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value ?? "";
    return [dt, dd];
  }));
  for (const name of ["crop", "vehicle"]) {
    const img = $(`detail-${name}`);
    img.hidden = true;
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
    if (!names.includes(name)) continue;
    imageUrl(e.event_id, name).then((url) => {
      if (shown !== e.event_id) return URL.revokeObjectURL(url); // another event's view by now
      img.src = url;
      img.hidden = false;
    }, (err) => say(err.message, true));
  }
  $("detail").showModal();
}

async function downloadCsv() {
  try {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await (await api(`/events.csv?${filters()}`)).blob());
    a.download = "events.csv";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    say(e.message, true);
  }
}

async function listCameras() {
  const info = await (await fetch("/info")).json();
  $("camera-list").replaceChildren(...info.cameras.map((id) => Object.assign(document.createElement("option"), { value: id })));
}

keyField(() => search());
$("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
$("more").addEventListener("click", () => search(true));
$("csv").addEventListener("click", downloadCsv);
listCameras().catch(() => {}); // a suggestion list: the search works without it
showHealth();
search();
