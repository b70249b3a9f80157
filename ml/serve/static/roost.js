// Roost's page: the API (/api/predict, /api/audit, /api/strip, /api/explain) drawn on an SVG map of
// the bundle's own country outlines (/api/countries): no tile server, no CDN, no build step.
"use strict";
const W = 720, H = 360;
const x = lon => (lon + 180) / 360 * W, y = lat => (90 - lat) / 180 * H;
let countries = null;

function el(tag, attrs = {}, text = "") {
  const ns = ["svg", "path", "circle", "g", "ellipse", "title"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function ringPath(ring) {
  return ring.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join("") + "Z";
}

function landPath() {
  let d = "";
  for (const f of countries.features) {
    const g = f.geometry, polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
    for (const poly of polys) for (const ring of poly) d += ringPath(ring);
  }
  return d;
}

function filePosition(audits) {  // the file's own GPS position (EXIF, decimal degrees), if it has one
  for (const a of audits) {
    const value = name => (a.findings || []).find(f => f.field === name)?.value;
    const lat = parseFloat(value("GPSLatitude")), lon = parseFloat(value("GPSLongitude"));
    if (Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) return {lat, lon};
  }
  return null;
}

function km(a, b) {  // haversine, R = 6371 km
  const r = d => d * Math.PI / 180, h = Math.sin(r(b.lat - a.lat) / 2) ** 2 +
    Math.cos(r(a.lat)) * Math.cos(r(b.lat)) * Math.sin(r(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

function drawMap(r, own) {
  const svg = el("svg", {class: "map", viewBox: `0 0 ${W} ${H}`});
  svg.appendChild(el("path", {class: "land", d: landPath()}));
  for (const c of r.top_cells) {  // top-5 cells, sized by probability
    svg.appendChild(el("circle", {class: "cell", cx: x(c.lon), cy: y(c.lat), r: 3 + 25 * Math.sqrt(c.probability)}));
  }
  const rx = r.radius_km / 111.32 / Math.max(Math.cos(r.lat * Math.PI / 180), 0.05) * W / 360;
  const ry = r.radius_km / 111.32 * H / 180;
  svg.appendChild(el("ellipse", {class: "radius", cx: x(r.lon), cy: y(r.lat), rx, ry}));
  const pin = el("circle", {class: "pin", cx: x(r.lon), cy: y(r.lat), r: 5});
  pin.appendChild(el("title", {}, `${r.lat}, ${r.lon}`));
  svg.appendChild(pin);
  if (own) {  // a diamond where the file itself says it was taken
    const [cx, cy] = [x(own.lon), y(own.lat)];
    const mark = el("path", {class: "file-gps", d: `M${cx},${cy - 7}L${cx + 7},${cy}L${cx},${cy + 7}L${cx - 7},${cy}Z`});
    mark.appendChild(el("title", {}, `your file says you were here: ${own.lat}, ${own.lon}`));
    svg.appendChild(mark);
  }
  return svg;
}

function findingsTable(audit) {
  if (audit.error) return el("p", {class: "error"}, audit.error);
  if (!audit.findings.length) return el("p", {class: "clean"}, "The file's metadata gives nothing away.");
  const t = el("table", {class: "findings"});
  for (const f of audit.findings) {
    const row = el("tr");
    row.appendChild(el("td", {class: "kind-" + f.kind}, f.kind));
    row.appendChild(el("td", {class: "field"}, f.field));
    row.appendChild(el("td", {}, f.value));
    t.appendChild(row);
  }
  return t;
}

async function post(path, files, query = "") {
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  return fetch(path + query, {method: "POST", body: form});
}

function stripButton(file) {
  const box = el("div", {class: "strip"});
  const button = el("button", {class: "download", type: "button"}, "Download a copy without location data");
  button.addEventListener("click", async () => {
    const reply = await post("/api/strip", [file]);
    if (!reply.ok) { box.appendChild(el("p", {class: "error"}, (await reply.json()).error)); return; }
    const blob = await reply.blob();
    const link = el("a", {class: "stripped", href: URL.createObjectURL(blob), download: "stripped-" + file.name},
                    "stripped-" + file.name + " (" + (reply.headers.get("X-Roost-Removed") || "") + " removed)");
    box.appendChild(link);
    link.click();
  });
  box.appendChild(button);
  return box;
}

async function overlay(file, card) {
  const reply = await post("/api/explain", [file]);
  if (reply.ok) {
    card.querySelector(".side").appendChild(el("p", {}, "Where the model looked:"));
    card.querySelector(".side").appendChild(el("img", {class: "overlay", src: URL.createObjectURL(await reply.blob())}));
  }
}

function card(result, audits, files) {
  const c = el("section", {class: "card" + (result.error ? " failed" : "")});
  c.appendChild(el("h2", {}, result.input));
  if (result.error) {
    c.appendChild(el("p", {class: "error"}, result.error));
    return c;
  }
  const own = filePosition(audits);
  c.appendChild(drawMap(result, own));
  const side = el("div", {class: "side"});
  if (own) {
    side.appendChild(el("p", {class: "file-gps-note"}, `Your file says you were here: ${own.lat}, ${own.lon} ` +
      `(the diamond; ${Math.round(km(own, result))} km from the model's guess).`));
  }
  const where = [result.town && `near ${result.town}`, result.admin1, result.country_name || result.country].filter(Boolean);
  side.appendChild(el("p", {class: "guess"}, `Guess: ${where.join(", ") || "somewhere"} (${result.lat}, ${result.lon})`));
  side.appendChild(el("p", {class: "country"}, `Country: ${result.country_name || result.country || "-"}`));
  side.appendChild(el("p", {}, `Half the model's probability lies within ${Math.round(result.radius_km)} km.`));
  const heads = ["climate", "landcover", "elevation_m", "population_density", "month"].filter(k => k in result);
  if (heads.length) side.appendChild(el("p", {class: "heads"}, heads.map(k => `${k}: ${result[k]}`).join("; ")));
  const warning = document.getElementById("domain-warning");
  if (warning) side.appendChild(el("p", {class: "warning"}, warning.textContent));
  for (const a of audits) {
    side.appendChild(el("h3", {}, `What ${a.input} gives away`));
    side.appendChild(findingsTable(a));
    const file = files.find(f => f.name === a.input);
    if (file && !a.error) side.appendChild(stripButton(file));
  }
  c.appendChild(side);
  return c;
}

async function run(files) {
  const status = document.getElementById("status"), results = document.getElementById("results");
  status.textContent = "Working...";
  results.replaceChildren();
  countries = countries || await (await fetch("/api/countries")).json();
  const group = document.getElementById("group").checked && files.length > 1;
  const [predicted, audited] = await Promise.all([post("/api/predict", files, group ? "?group=1" : ""),
                                                  post("/api/audit", files)]);
  if (!predicted.ok || !audited.ok) {
    status.textContent = ((await (predicted.ok ? audited : predicted).json()).error) || "the request failed";
    return;
  }
  const guesses = await predicted.json(), audits = await audited.json();
  for (const r of guesses) {
    const mine = group ? audits : audits.filter(a => a.input === r.input);
    const c = card(r, mine, files);
    results.appendChild(c);
    if (!r.error) overlay(files.find(f => f.name === r.input) || files[0], c);
  }
  status.textContent = `${guesses.length} result(s).`;
}

const drop = document.getElementById("drop"), input = document.getElementById("files");
document.getElementById("upload").addEventListener("submit", ev => { ev.preventDefault(); run([...input.files]); });
drop.addEventListener("dragover", ev => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", ev => { ev.preventDefault(); drop.classList.remove("over"); run([...ev.dataTransfer.files]); });
