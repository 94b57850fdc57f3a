"use strict";
// Teu's page: containers (with their actions and CPU/memory sparklines), a container's details, logs,
// processes, changes and terminal, images (pull, tag, remove, history), volumes, networks, events.
// Plain DOM, no framework, no network but this server: the page works offline.

const view = document.getElementById("view");
const errorBox = document.getElementById("error");
let closeView = () => {};
let redraw = () => route(); // what an action redraws: the view's own, which keeps its sockets open

async function api(method, path, body) {
  const init = { method, credentials: "same-origin" };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers = { "Content-Type": "application/json" }; }
  const r = await fetch(path, init);
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.message || r.statusText);
  return answer;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElementNS(tag === "svg" || tag === "polyline" ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
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

// Runs an action, shows its failure if any, then redraws the view.
async function attempt(fn) {
  try { await fn(); showError(null); } catch (e) { showError(e); }
  await redraw();
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

function bytes(n) {
  if (n == null || n < 0) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "");
const shortId = (id) => id.replace("sha256:", "").slice(0, 12);
const list = (text) => (text || "").split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
const table = (id, titles, rows) => el("table", { id },
  el("thead", {}, el("tr", {}, ...titles.map((t) => (Array.isArray(t) ? el("th", { class: t[1] }, t[0]) : el("th", {}, t))))),
  el("tbody", {}, ...rows));

// A small form of text fields and a button; onSubmit gets the values by name.
function form(id, fields, button, onSubmit) {
  const f = el("form", { id, class: "inline-form" },
    ...fields.map(([name, label, hint]) => el("label", {}, label, " ", el("input", { name, placeholder: hint || "" }))),
    el("button", { type: "submit" }, button));
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(f).entries());
    attempt(() => onSubmit(values));
  });
  return f;
}

// ---- containers ----

// CPU and memory readings of each container, newest last (kept across redraws of the list).
const usage = new Map();
const POINTS = 40;

function sparkline(values, max) {
  const top = Math.max(max, ...values, 1e-9);
  const step = 60 / (POINTS - 1);
  const shown = values.length === 1 ? [values[0], values[0]] : values; // one reading: a short flat line
  const points = shown.map((v, i) => `${(60 - (shown.length - 1 - i) * step).toFixed(1)},${(15.5 - (v / top) * 15).toFixed(1)}`).join(" ");
  return el("svg", { class: "spark", viewBox: "0 0 60 16", width: "60", height: "16", "aria-hidden": "true" },
    el("polyline", { points, fill: "none", stroke: "currentColor", "stroke-width": "1.2" }));
}

function drawUsage(row) {
  const u = usage.get(row.dataset.id);
  if (!u) return;
  const last = u.readings[u.readings.length - 1];
  row.querySelector("td.cpu").replaceChildren(sparkline(u.readings.map((r) => r.cpu_percent), 100), " ", last.cpu_percent.toFixed(1) + "%");
  row.querySelector("td.mem").replaceChildren(sparkline(u.readings.map((r) => r.memory), last.memory_limit / 8), " ", bytes(last.memory));
}

function actionsFor(c) {
  const names = c.state === "running" ? ["stop", "restart", "pause", "kill"] : c.state === "paused" ? ["unpause"] : ["start"];
  return [...names, "remove"].map((a) => el("button", { "data-action": a, onclick: () => attempt(() =>
    a === "remove" ? api("DELETE", `/api/containers/${c.id}`) : api("POST", `/api/containers/${c.id}/${a}`)) }, a));
}

async function containersView() {
  const body = el("tbody");
  async function draw() {
    const found = await api("GET", "/api/containers");
    body.replaceChildren(...found.map((c) => {
      const row = el("tr", { "data-id": c.id, "data-name": c.name },
        el("td", {}, el("a", { href: `#/containers/${c.id}` }, c.name)),
        el("td", { class: "wide" }, c.image),
        el("td", { class: `state state-${c.state}` }, c.state),
        el("td", { class: "wide" }, c.status + (c.health ? ` (${c.health})` : "")),
        el("td", { class: "wide" }, c.ports.join(", ")),
        el("td", { class: "wide" }, uptime(c.uptime_s)),
        el("td", { class: "wide cpu" }), el("td", { class: "wide mem" }),
        el("td", {}, ...actionsFor(c)));
      drawUsage(row);
      return row;
    }));
    if (!found.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "9", class: "muted" }, "No container yet: run one with the form above, or teu run.")));
  }
  await draw();
  view.replaceChildren(el("h2", {}, "Containers"), runForm(), el("table", { id: "containers" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "wide" }, "Image"), el("th", {}, "State"),
      el("th", { class: "wide" }, "Status"), el("th", { class: "wide" }, "Ports"), el("th", { class: "wide" }, "Up"),
      el("th", { class: "wide" }, "CPU"), el("th", { class: "wide" }, "Memory"), el("th", {}, ""))), body));
  redraw = draw;
  let pending = null;
  const events = socket("/api/events", (e) => {
    if (e.type === "container") { clearTimeout(pending); pending = setTimeout(() => draw().catch(showError), 150); }
  });
  const stats = socket("/api/stats", (readings) => {
    if (readings.error) return;
    for (const r of readings) {
      const u = usage.get(r.id) || { readings: [] };
      u.readings.push(r);
      if (u.readings.length > POINTS) u.readings.shift();
      usage.set(r.id, u);
      const row = body.querySelector(`tr[data-id="${r.id}"]`);
      if (row) drawUsage(row);
    }
  });
  return () => { events.close(); stats.close(); clearTimeout(pending); };
}

// Run a container in the background: what `teu run -d` takes, in a few fields.
function runForm() {
  const f = form("run-form", [["image", "image", "busybox"], ["name", "name", "(optional)"],
    ["cmd", "command", "sh -c 'echo hi; sleep 300'"], ["ports", "ports", "8080:80, ..."], ["env", "env", "K=V, ..."],
    ["volumes", "volumes", "data:/data, ..."]], "run", (v) => api("POST", "/api/containers",
    { image: v.image, name: v.name, cmd: v.cmd, ports: list(v.ports), env: list(v.env), volumes: list(v.volumes) }));
  return el("details", {}, el("summary", {}, "Run a container"), f);
}

// A container's inspect, the parts a person reads first.
function details(d) {
  const rows = [
    ["Id", d.Id], ["Image", d.Config.Image], ["Command", [...(d.Config.Entrypoint || []), ...(d.Config.Cmd || [])].join(" ")],
    ["Created", new Date(d.Created).toLocaleString()], ["State", d.State.Status + (d.State.Health ? ` (${d.State.Health.Status})` : "")],
    ["Started", d.State.Running ? new Date(d.State.StartedAt).toLocaleString() : ""],
    ["Exit code", d.State.Running ? "" : d.State.ExitCode], ["Restart policy", d.HostConfig.RestartPolicy?.Name || "no"],
    ["Ports", Object.entries(d.NetworkSettings?.Ports || {}).map(([p, b]) => (b || []).map((x) => `${x.HostIp || "0.0.0.0"}:${x.HostPort}->${p}`).join(", ")).filter(Boolean).join(", ")],
    ["Networks", Object.entries(d.NetworkSettings?.Networks || {}).map(([n, e]) => `${n} ${e.IPAddress || ""}`).join(", ")],
    ["Mounts", (d.Mounts || []).map((m) => `${m.Name || m.Source} → ${m.Destination}${m.RW ? "" : " (ro)"}`).join(", ")],
    ["Environment", (d.Config.Env || []).join("\n")],
    ["Labels", Object.entries(d.Config.Labels || {}).map(([k, v]) => `${k}=${v}`).join("\n")],
  ].filter(([, v]) => v !== "" && v != null);
  return el("table", { id: "details", class: "kv" }, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
}

async function containerView(id) {
  const d = await api("GET", `/api/containers/${id}`);
  const logBox = el("pre", { id: "logs" });
  const grep = el("input", { id: "logs-grep", type: "search", placeholder: "search (regular expression)" });
  const tail = el("select", { id: "logs-tail" }, ...["100", "200", "1000", "0"].map((n) => el("option", n === "200" ? { value: n, selected: "" } : { value: n }, n === "0" ? "all" : `last ${n}`)));
  const topBox = el("div", { id: "top" });
  const diffBox = el("div", { id: "diff" });
  const termBox = el("div", { id: "terminal" });
  let logs = null;
  let shell = null;
  function follow() {
    if (logs) logs.close();
    logBox.replaceChildren();
    const query = new URLSearchParams({ tail: tail.value, grep: grep.value });
    logs = socket(`/api/containers/${id}/logs/follow?${query}`, (line) => {
      if (line.error) { showError(line.error); return; }
      logBox.append(line.text);
      logBox.scrollTop = logBox.scrollHeight;
    });
  }
  let typing = null;
  grep.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(follow, 300); });
  tail.addEventListener("change", follow);
  async function processes() {
    const t = await api("GET", `/api/containers/${id}/top`);
    topBox.replaceChildren(table("processes", t.titles, t.processes.map((p) => el("tr", {}, ...p.map((c) => el("td", {}, c))))));
  }
  async function changes() {
    const found = await api("GET", `/api/containers/${id}/diff`);
    diffBox.replaceChildren(found.length ? el("pre", { id: "changes" }, found.map((c) => `${c.kind} ${c.path}`).join("\n")) : el("p", { class: "muted" }, "no change"));
  }
  const refresh = (what, fn) => el("button", { id: `refresh-${what}`, onclick: () => fn().then(() => showError(null), showError) }, "refresh");
  const openShell = el("button", { id: "open-terminal", onclick: () => { shell = shell || terminal(id, termBox); } }, "open a shell");
  const running = d.State.Running && !d.State.Paused;
  view.replaceChildren(
    el("h2", {}, d.Name.replace(/^\//, ""), " ", el("span", { class: "muted" }, d.State.Paused ? "paused" : d.State.Status)),
    el("div", {}, ...actionsFor({ id: d.Id, state: d.State.Paused ? "paused" : d.State.Status })),
    el("h3", {}, "Details"), details(d),
    el("h3", {}, "Logs"), el("div", { class: "inline-form" }, grep, tail), logBox,
    el("h3", {}, "Processes ", refresh("top", processes)), topBox,
    el("h3", {}, "Changes ", refresh("diff", changes)), diffBox,
    el("h3", {}, "Terminal"), running ? openShell : el("p", { class: "muted" }, "the container is not running"), termBox,
    el("details", {}, el("summary", {}, "Inspect (JSON)"), el("pre", { id: "inspect" }, JSON.stringify(d, null, 2))));
  follow();
  if (running) processes().catch(showError);
  else topBox.replaceChildren(el("p", { class: "muted" }, "the container is not running"));
  changes().catch(showError);
  redraw = () => route();
  return () => { if (logs) logs.close(); if (shell) shell.close(); clearTimeout(typing); };
}

// A shell in the container: exec sh on a terminal over a WebSocket, drawn by xterm.js (vendored).
function terminal(id, box) {
  const fit = () => Math.max(20, Math.min(200, Math.floor(box.clientWidth / 9))); // columns the box holds
  const term = new Terminal({ cols: fit(), rows: 24, cursorBlink: true });
  term.open(box);
  box.scrollIntoView({ block: "nearest" }); // xterm.js draws only while it is in view
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
  term.onResize(({ cols, rows }) => {
    box.dataset.size = `${rows}x${cols}`;
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [cols, rows] }));
  });
  let sizing = null;
  const resized = () => { clearTimeout(sizing); sizing = setTimeout(() => { if (fit() !== term.cols) term.resize(fit(), term.rows); }, 100); };
  window.addEventListener("resize", resized); // the shell learns its new size (SIGWINCH) through the resize message
  ws.addEventListener("close", () => window.removeEventListener("resize", resized));
  term.focus();
  return ws;
}

// ---- images ----

async function imagesView() {
  const found = await api("GET", "/api/images");
  const progress = el("pre", { id: "pull-progress", hidden: "" });
  const pull = form("pull-form", [["image", "image", "registry:5000/name:tag"]], "pull", (v) => new Promise((resolve, reject) => {
    const blobs = new Map();
    progress.hidden = false;
    progress.textContent = `pulling ${v.image}…`;
    const ws = socket(`/api/images/pull?${new URLSearchParams({ image: v.image })}`, (p) => {
      if (p.error) { ws.close(); reject(new Error(p.error)); return; }
      if (p.image) { progress.textContent += `\npulled ${v.image}: ${shortId(p.image)}`; ws.close(); resolve(); return; }
      blobs.set(p.digest || "image", p);
      progress.textContent = [...blobs.entries()].map(([dg, b]) =>
        `${dg === "image" ? "image" : shortId(dg)}  ${b.status}  ${bytes(b.done)}${b.total ? " / " + bytes(b.total) : ""}`).join("\n");
    });
    ws.onerror = () => reject(new Error("the pull's connection failed"));
  }));
  view.replaceChildren(el("h2", {}, "Images"), pull, progress, table("images",
    ["Tags", "Id", ["Created", "wide"], ["Layers", "wide"], "Size", ""],
    found.map((i) => el("tr", { "data-id": i.id },
      el("td", {}, el("a", { href: `#/images/${i.id}` }, i.tags.join(", ") || "<none>")),
      el("td", {}, shortId(i.id)), el("td", { class: "wide" }, when(i.created)), el("td", { class: "wide" }, i.layers),
      el("td", {}, bytes(i.size)),
      el("td", {}, el("button", { "data-action": "remove", onclick: () => attempt(() => api("DELETE", `/api/images/${i.id}?force=1`)) }, "remove"))))));
  redraw = () => route();
  return () => {};
}

async function imageView(ref) {
  const { inspect: i, history } = await api("GET", `/api/images/${encodeURIComponent(ref)}`);
  const c = i.Config;
  const rows = [["Id", i.Id], ["Tags", i.RepoTags.join(", ")], ["Created", new Date(i.Created).toLocaleString()], ["Size", bytes(i.Size)],
    ["Layers", i.RootFS.Layers.length], ["Entrypoint", (c.Entrypoint || []).join(" ")], ["Command", (c.Cmd || []).join(" ")],
    ["Working dir", c.WorkingDir], ["User", c.User], ["Ports", Object.keys(c.ExposedPorts || {}).join(", ")],
    ["Environment", (c.Env || []).join("\n")], ["Labels", Object.entries(c.Labels || {}).map(([k, v]) => `${k}=${v}`).join("\n")],
  ].filter(([, v]) => v !== "" && v != null);
  view.replaceChildren(
    el("h2", {}, i.RepoTags[0] || shortId(i.Id)),
    form("tag-form", [["target", "tag as", "name:tag"]], "tag", (v) => api("POST", `/api/images/${i.Id}/tag`, { target: v.target })),
    el("button", { "data-action": "remove", onclick: () => attempt(async () => { await api("DELETE", `/api/images/${i.Id}?force=1`); location.hash = "#/images"; }) }, "remove"),
    el("h3", {}, "Details"), el("table", { id: "image-details", class: "kv" }, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))),
    el("h3", {}, "History"), table("history", ["Created by", ["Created", "wide"], "Size"], history.map((h) =>
      el("tr", {}, el("td", { class: "created-by" }, h.created_by), el("td", { class: "wide" }, when(h.created)), el("td", {}, bytes(h.size))))),
    el("details", {}, el("summary", {}, "Inspect (JSON)"), el("pre", {}, JSON.stringify(i, null, 2))));
  redraw = () => route();
  return () => {};
}

// ---- volumes, networks, events ----

async function volumesView() {
  const found = await api("GET", "/api/volumes");
  view.replaceChildren(el("h2", {}, "Volumes"),
    form("volume-form", [["name", "name", "(random when empty)"]], "create", (v) => api("POST", "/api/volumes", { name: v.name })),
    table("volumes", ["Name", ["Mountpoint", "wide"], ["Created", "wide"], "Size", "Used by", ""], found.map((v) => el("tr", { "data-name": v.name },
      el("td", {}, v.name), el("td", { class: "wide" }, v.mountpoint), el("td", { class: "wide" }, when(v.created)),
      el("td", {}, v.size >= 0 ? bytes(v.size) : ""), el("td", {}, v.used_by.join(", ")),
      el("td", {}, el("button", { "data-action": "remove", onclick: () => attempt(() => api("DELETE", `/api/volumes/${encodeURIComponent(v.name)}`)) }, "remove"))))));
  redraw = () => route();
  return () => {};
}

async function networksView() {
  const found = await api("GET", "/api/networks");
  view.replaceChildren(el("h2", {}, "Networks"),
    form("network-form", [["name", "name", "backend"], ["subnet", "subnet", "(free one when empty)"]], "create",
      (v) => api("POST", "/api/networks", { name: v.name, subnet: v.subnet })),
    table("networks", ["Name", "Subnet", ["Gateway", "wide"], ["Driver", "wide"], "Containers", ""], found.map((n) => el("tr", { "data-name": n.name },
      el("td", {}, n.name + (n.internal ? " (internal)" : "")), el("td", {}, n.subnet), el("td", { class: "wide" }, n.gateway),
      el("td", { class: "wide" }, n.driver), el("td", {}, Object.values(n.containers).join(", ")),
      el("td", {}, el("button", { "data-action": "remove", onclick: () => attempt(() => api("DELETE", `/api/networks/${encodeURIComponent(n.name)}`)) }, "remove"))))));
  redraw = () => route();
  return () => {};
}

function eventsView() {
  const box = el("pre", { id: "events" });
  view.replaceChildren(el("h2", {}, "Events"), box);
  const ws = socket("/api/events", (e) => {
    box.append(`${new Date(e.time / 1e6).toISOString()} ${e.type} ${e.action} ${e.name || (/^(sha256:)?[0-9a-f]{64}$/.test(e.id) ? shortId(e.id) : e.id)}\n`);
  });
  redraw = () => route();
  return () => ws.close();
}

async function route() {
  closeView();
  closeView = () => {};
  const hash = location.hash || "#/";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("here", hash.startsWith(a.getAttribute("href")) && (a.getAttribute("href") !== "#/" || hash === "#/" || hash.startsWith("#/containers")));
  try {
    if (hash.startsWith("#/containers/")) closeView = await containerView(hash.slice("#/containers/".length));
    else if (hash.startsWith("#/images/")) closeView = await imageView(decodeURIComponent(hash.slice("#/images/".length)));
    else if (hash === "#/images") closeView = await imagesView();
    else if (hash === "#/volumes") closeView = await volumesView();
    else if (hash === "#/networks") closeView = await networksView();
    else if (hash === "#/events") closeView = eventsView();
    else closeView = await containersView();
  } catch (e) { showError(e); }
}

window.addEventListener("hashchange", route);
route();
