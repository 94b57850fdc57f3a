"use strict";
// Teu's page: containers (with their actions), a container's details and live logs, images, events.
// Plain DOM, no framework, no network but this server: the page works offline.

const view = document.getElementById("view");
const errorBox = document.getElementById("error");
let closeView = () => {};

async function api(method, path, body) {
  const init = { method, credentials: "same-origin" };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers = { "Content-Type": "application/json" }; }
  const r = await fetch(path, init);
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.message || r.statusText);
  return answer;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function showError(e) {
  errorBox.textContent = e ? String(e.message || e) : "";
  errorBox.hidden = !e;
}

function socket(path, onMessage) {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
  ws.onmessage = (m) => onMessage(JSON.parse(m.data));
  return ws;
}

function uptime(s) {
  if (s == null) return "";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

async function act(id, action) {
  try {
    if (action === "remove") await api("DELETE", `/api/containers/${id}`);
    else await api("POST", `/api/containers/${id}/${action}`);
    showError(null);
  } catch (e) { showError(e); }
  await route();
}

async function containersView() {
  const list = await api("GET", "/api/containers");
  const rows = list.map((c) => el("tr", { "data-id": c.id, "data-name": c.name },
    el("td", {}, el("a", { href: `#/containers/${c.id}` }, c.name)),
    el("td", { class: "wide" }, c.image),
    el("td", { class: `state state-${c.state}` }, c.state),
    el("td", { class: "wide" }, c.status + (c.health ? ` (${c.health})` : "")),
    el("td", { class: "wide" }, c.ports.join(", ")),
    el("td", { class: "wide" }, uptime(c.uptime_s)),
    el("td", {}, ...actionsFor(c))));
  view.replaceChildren(el("h2", {}, "Containers"), runForm(), el("table", { id: "containers" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "wide" }, "Image"), el("th", {}, "State"),
      el("th", { class: "wide" }, "Status"), el("th", { class: "wide" }, "Ports"), el("th", { class: "wide" }, "Up"), el("th", {}, ""))),
    el("tbody", {}, ...rows)));
  const ws = socket("/api/events", (e) => { if (e.type === "container") refresh(); });
  let pending = null;
  function refresh() { clearTimeout(pending); pending = setTimeout(route, 150); }
  return () => ws.close();
}

// Run a container in the background: what `teu run -d` takes, in a few fields.
function runForm() {
  const field = (name, label, hint) => el("label", {}, label, " ", el("input", { name, placeholder: hint }));
  const list = (text) => text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
  const form = el("form", { id: "run-form" },
    field("image", "image", "busybox"), field("name", "name", "(optional)"), field("cmd", "command", "sh -c 'echo hi; sleep 300'"),
    field("ports", "ports", "8080:80, ..."), field("env", "env", "K=V, ..."), field("volumes", "volumes", "data:/data, ..."),
    el("button", { type: "submit" }, "run"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      await api("POST", "/api/containers", { image: f.get("image"), name: f.get("name"), cmd: f.get("cmd"),
        ports: list(f.get("ports")), env: list(f.get("env")), volumes: list(f.get("volumes")) });
      showError(null);
      await route();
    } catch (err) { showError(err); }
  });
  return el("details", {}, el("summary", {}, "Run a container"), form);
}

function actionsFor(c) {
  const names = c.state === "running" ? ["stop", "restart", "pause", "kill"] : c.state === "paused" ? ["unpause"] : ["start"];
  return [...names, "remove"].map((a) => el("button", { "data-action": a, onclick: () => act(c.id, a) }, a));
}

async function containerView(id) {
  const d = await api("GET", `/api/containers/${id}`);
  const logBox = el("pre", { id: "logs" });
  const info = el("pre", { id: "inspect" }, JSON.stringify(d, null, 2));
  const termBox = el("div", { id: "terminal" });
  let shell = null;
  const openShell = el("button", { id: "open-terminal", onclick: () => { shell = shell || terminal(id, termBox); } }, "terminal (sh)");
  view.replaceChildren(
    el("h2", {}, d.Name.replace(/^\//, ""), " ", el("span", { class: "muted" }, d.State.Status)),
    el("div", {}, ...actionsFor({ id: d.Id, state: d.State.Paused ? "paused" : d.State.Status })),
    el("h3", {}, "Logs"), logBox, el("h3", {}, "Terminal"), openShell, termBox, el("h3", {}, "Inspect"), info);
  const ws = socket(`/api/containers/${id}/logs/follow?tail=200`, (line) => {
    if (line.error) { showError(line.error); return; }
    logBox.append(line.text);
    logBox.scrollTop = logBox.scrollHeight;
  });
  return () => { ws.close(); if (shell) shell.close(); };
}

// A shell in the container: exec sh on a terminal over a WebSocket, drawn by xterm.js (vendored).
function terminal(id, box) {
  const term = new Terminal({ cols: 80, rows: 24, cursorBlink: true });
  term.open(box);
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    `/api/containers/${id}/terminal?cols=${term.cols}&rows=${term.rows}`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (m) => {
    if (typeof m.data !== "string") { term.write(new Uint8Array(m.data)); return; }
    const doc = JSON.parse(m.data);
    if (doc.error) showError(doc.error);
    if (doc.exit !== undefined) term.write(`\r\n[exited ${doc.exit}]\r\n`);
  };
  term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ data })); });
  term.onResize(({ cols, rows }) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [cols, rows] })); });
  term.focus();
  return ws;
}

async function imagesView() {
  const list = await api("GET", "/api/images");
  view.replaceChildren(el("h2", {}, "Images"), el("table", { id: "images" },
    el("thead", {}, el("tr", {}, el("th", {}, "Tags"), el("th", {}, "Id"), el("th", { class: "wide" }, "Layers"), el("th", {}, "Size"))),
    el("tbody", {}, ...list.map((i) => el("tr", {}, el("td", {}, i.tags.join(", ") || "<none>"),
      el("td", {}, i.id.replace("sha256:", "").slice(0, 12)), el("td", { class: "wide" }, i.layers),
      el("td", {}, (i.size / 1e6).toFixed(1) + " MB"))))));
  return () => {};
}

function eventsView() {
  const box = el("pre", { id: "events" });
  view.replaceChildren(el("h2", {}, "Events"), box);
  const ws = socket("/api/events", (e) => {
    box.append(`${new Date(e.time / 1e6).toISOString()} ${e.type} ${e.action} ${e.name || e.id.slice(0, 12)}\n`);
  });
  return () => ws.close();
}

async function route() {
  closeView();
  closeView = () => {};
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/containers/")) closeView = await containerView(hash.slice("#/containers/".length));
    else if (hash === "#/images") closeView = await imagesView();
    else if (hash === "#/events") closeView = eventsView();
    else closeView = await containersView();
  } catch (e) { showError(e); }
}

window.addEventListener("hashchange", route);
route();
