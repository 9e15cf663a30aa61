// The wallet simulator's dashboard: plain JavaScript, no dependencies, nothing loaded from elsewhere.
// Every call goes to this server's /_sim control API, same origin, JSON (YAML for the scenario).
// Data from the wire is always inserted as text, never as HTML.
"use strict";

const TOKEN_KEY = "wallet-sim-admin-token";
const MAX_ENTRIES = 1000;   // requests kept in the page
const MAX_ROWS = 500;       // rows shown in the traffic table
const $ = (id) => document.getElementById(id);

// ---------- exact numbers: money stays the digits the server sent ----------

function parseJSON(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && context && typeof JSON.rawJSON === "function" ? JSON.rawJSON(context.source) : value);
}
const isRaw = (v) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(v);
function txt(v) {
  if (v === null || v === undefined) return "";
  if (isRaw(v)) return v.rawJSON;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
const num = (v) => Number(txt(v)) || 0;
const pretty = (v) => (v === null || v === undefined ? "—" : JSON.stringify(v, null, 2));

// ---------- the control API, with the admin token asked for once per tab ----------

let tokenPrompt = null;

function askToken(refused) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = $("token-dialog");
  $("token-error").hidden = !refused;
  $("token-input").value = "";
  tokenPrompt = new Promise((resolve, reject) => {
    const form = $("token-form");
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      tokenPrompt = null;
      ok ? resolve() : reject(new Error("the control API needs the admin token"));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
      dialog.close();
      done(true);
    };
    const onCancel = () => done(false);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
  });
  dialog.showModal();
  $("token-input").focus();
  return tokenPrompt;
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(method, path, { json, yaml, raw } = {}) {
  for (;;) {
    const headers = authHeaders();
    let body;
    if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
    if (yaml !== undefined) { headers["Content-Type"] = "application/yaml"; body = yaml; }
    if (method !== "GET" && !headers["Content-Type"]) headers["Content-Type"] = "application/json";  // the control API's CSRF rule
    const response = await fetch("/_sim" + path, { method, headers, body, cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) { await askToken(Boolean(headers.Authorization)); continue; }
    const text = await response.text();
    let data = text;
    if (!raw) { try { data = parseJSON(text); } catch { /* not JSON: keep the text */ } }
    return { status: response.status, ok: response.ok, data, next: response.headers.get("X-Next-Cursor") };
  }
}

function notice(message, ok = false) {
  const box = $("notice");
  box.textContent = message;
  box.className = ok ? "notice ok" : "notice";
  box.hidden = !message;
}

function errorText(answer) {
  const data = answer.data;
  if (data && typeof data === "object") {
    return data.problems ? data.problems.join("\n") : txt(data.error) || JSON.stringify(data);
  }
  return `HTTP ${answer.status}: ${txt(data)}`;
}

// ---------- small DOM helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child instanceof Node ? child : txt(child));
  return node;
}
const cell = (value, cls) => el("td", cls ? { class: cls } : {}, txt(value));

// ---------- views ----------

const views = ["traffic", "players", "scenario", "health"];
let current = "traffic";
const refreshers = {};

function show(name, focus = false) {
  if (!views.includes(name)) name = "traffic";
  current = name;
  for (const view of views) {
    const tab = $("tab-" + view);
    tab.setAttribute("aria-selected", String(view === name));
    tab.tabIndex = view === name ? 0 : -1;
    $("view-" + view).hidden = view !== name;
  }
  if (focus) $("tab-" + name).focus();
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  refresh(name);
}

function refresh(name, live = false) {
  Promise.resolve(refreshers[name]?.(live)).catch((error) => notice(String(error.message || error)));
}

function setupTabs() {
  for (const view of views) $("tab-" + view).addEventListener("click", () => show(view));
  document.querySelector(".tabs").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = views[(views.indexOf(current) + step + views.length) % views.length];
    show(next, true);
    event.preventDefault();
  });
  show(location.hash.slice(1) || "traffic");
}

// refresh the visible view after traffic, at most once a second (the feed drives it: no polling)
let refreshTimer = null;
function trafficHappened() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; if (current !== "traffic") refresh(current, true); }, 1000);
}

// ---------- live traffic ----------

const traffic = { entries: [], paused: false, unseen: 0, dropped: 0, selected: null };

function filters() {
  return {
    dialect: $("f-dialect").value,
    player: $("f-player").value.trim().toLowerCase(),
    operation: $("f-operation").value.trim().toLowerCase(),
    code: $("f-code").value.trim(),
  };
}

function matches(entry, f) {
  return (!f.dialect || entry.dialect === f.dialect)
    && (!f.player || txt(entry.player).toLowerCase().includes(f.player))
    && (!f.operation || txt(entry.operation).toLowerCase().includes(f.operation))
    && (!f.code || txt(entry.response.code) === f.code || txt(entry.response.status) === f.code);
}

function isError(entry) {
  const code = txt(entry.response.code);
  return !entry.response.fault && (num(entry.response.status) >= 400 || (code !== "" && code !== "0"));
}

function trafficRow(entry) {
  const classes = [isError(entry) ? "err" : "", entry.response.fault ? "fault" : ""].join(" ").trim();
  const row = el("tr", { tabindex: "0", class: classes, "data-seq": txt(entry.seq),
    "aria-selected": String(traffic.selected === entry) });
  row.append(
    cell(txt(entry.time).slice(11, 23), "mono"), cell(entry.dialect), cell(entry.operation ?? entry.endpoint),
    cell(entry.player), cell(entry.transaction, "mono txn"), cell(entry.amount, "num"),
    cell(entry.response.code ?? entry.response.status, "code"), cell(entry.rule, "rule"), cell(entry.response.fault, "fault"),
  );
  for (const td of row.querySelectorAll("td.txn, td.code, td.rule")) td.title = td.textContent;
  const open = () => selectEntry(entry, row);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } });
  return row;
}

function renderTraffic() {
  const f = filters();
  const rows = [];
  for (const entry of traffic.entries) {
    if (rows.length >= MAX_ROWS) break;
    if (matches(entry, f)) rows.push(trafficRow(entry));
  }
  $("traffic-rows").replaceChildren(...rows);
  traffic.unseen = 0;
  trafficInfo();
}

function trafficInfo() {
  const parts = [`${traffic.entries.length} kept`];
  if (traffic.paused) parts.push(`paused: ${traffic.unseen} new`);
  if (traffic.dropped) parts.push(`${traffic.dropped} not sent by the server (too busy to show every one)`);
  $("traffic-info").textContent = parts.join(" · ");
  $("traffic-empty").hidden = traffic.entries.length > 0;
}

function addEntries(entries) {
  if (!entries.length) return;
  const newest = entries.slice().reverse();
  traffic.entries = newest.concat(traffic.entries).slice(0, MAX_ENTRIES);
  if (traffic.paused) { traffic.unseen += entries.length; trafficInfo(); return; }
  const f = filters();
  const body = $("traffic-rows");
  const fresh = newest.filter((e) => matches(e, f)).slice(0, MAX_ROWS).map(trafficRow);
  body.prepend(...fresh);
  while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
  trafficInfo();
}

function selectEntry(entry, row) {
  traffic.selected = entry;
  for (const other of $("traffic-rows").querySelectorAll('tr[aria-selected="true"]')) other.setAttribute("aria-selected", "false");
  row?.setAttribute("aria-selected", "true");
  $("entry-title").textContent = `#${txt(entry.seq)} ${entry.dialect} ${txt(entry.operation ?? entry.endpoint)}`;
  const facts = [
    ["time", entry.time], ["endpoint", entry.endpoint], ["agent", entry.agent], ["player", entry.player],
    ["transaction", entry.transaction], ["round", entry.round], ["amount", entry.amount],
    ["HTTP status", entry.response.status], ["code", entry.response.code], ["rule", entry.rule],
    ["fault", entry.response.fault], ["detail", entry.detail], ["took", `${txt(entry.ms)} ms`],
    ["injected delay", `${txt(entry.delay_ms)} ms`],
  ];
  $("entry-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, txt(v) || "—")]));
  $("entry-request").textContent = pretty(entry.request);
  $("entry-answer").textContent = pretty(entry.response.body);
  $("entry-detail").hidden = false;
}

function setupTraffic() {
  for (const id of ["f-dialect", "f-player", "f-operation", "f-code"]) {
    $(id).addEventListener("input", renderTraffic);
    $(id).addEventListener("change", renderTraffic);
  }
  $("traffic-filters").addEventListener("submit", (event) => event.preventDefault());
  $("pause").addEventListener("click", () => {
    traffic.paused = !traffic.paused;
    $("pause").textContent = traffic.paused ? "Resume" : "Pause";
    $("pause").setAttribute("aria-pressed", String(traffic.paused));
    if (!traffic.paused) renderTraffic(); else trafficInfo();
  });
  $("clear-traffic").addEventListener("click", () => { traffic.entries = []; traffic.dropped = 0; renderTraffic(); });
  $("close-entry").addEventListener("click", () => { $("entry-detail").hidden = true; });
}

// ---------- the live feed: server-sent events read with fetch, so the admin token can go in a header ----------

const rates = { last: null };
const feedAck = { at: 0 };

async function connectFeed() {
  const status = $("feed-status");
  try {
    let response = await fetch("/_sim/events", { headers: authHeaders(), cache: "no-store" });
    while (response.status === 401) {
      try {
        await askToken(Boolean(authHeaders().Authorization));
      } catch {  // the prompt was dismissed: wait for the user rather than ask again and again
        status.textContent = "needs the admin token"; status.className = "pill down";
        $("unlock").hidden = false;
        return;
      }
      response = await fetch("/_sim/events", { headers: authHeaders(), cache: "no-store" });
    }
    if (!response.ok) throw new Error(`the live feed answered ${response.status}`);
    status.textContent = "live"; status.className = "pill live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (error) {
    notice(String(error.message || error));
  }
  status.textContent = "reconnecting…"; status.className = "pill down";
  setTimeout(connectFeed, 2000);
}

function handleEvent(block) {
  const lines = block.split("\n");
  if (lines.includes("event: reset")) {  // the journal was cleared, here or by another client
    traffic.entries = []; traffic.dropped = 0; $("entry-detail").hidden = true; renderTraffic();
    return;
  }
  const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
  if (!data) return;
  const batch = parseJSON(data);
  // tell the server this page reads, at every heartbeat (about 1 s), so it keeps its slot
  if (batch.page && Date.now() - feedAck.at >= 500) {
    feedAck.at = Date.now();
    api("POST", "/events/" + encodeURIComponent(batch.page) + "/ack").catch(() => {});
  }
  traffic.dropped += num(batch.dropped);
  addEntries(batch.entries);
  updateRates(batch.counts, num(batch.time));
  if (batch.entries.length) trafficHappened();
}

// ---------- health ----------

function updateRates(counts, time) {
  const previous = rates.last;
  if (!previous || time - previous.time >= 1) {
    const perSecond = {};
    for (const [dialect, c] of Object.entries(counts)) {
      const before = previous?.counts[dialect]?.requests ?? num(c.requests);
      perSecond[dialect] = previous ? (num(c.requests) - num(before)) / (time - previous.time) : 0;
    }
    rates.last = { time, counts, perSecond };
  } else {
    rates.last = { ...previous, counts };
  }
  renderCards();
}

function renderCards() {
  const last = rates.last;
  const cards = ["xpro", "fizzy", "ambslot"].map((dialect) => {
    const c = last?.counts[dialect] ?? {};
    const rate = last?.perSecond[dialect] ?? 0;
    return el("div", { class: "card", "data-dialect": dialect },
      el("h3", {}, dialect),
      el("div", { class: "rate" }, rate.toFixed(rate < 10 ? 1 : 0), el("span", { class: "muted" }, " req/s")),
      el("div", {}, `${num(c.requests)} requests · `, el("span", { class: num(c.errors) ? "bad" : "" }, `${num(c.errors)} errors`),
        ` · ${num(c.faults)} faults`));
  });
  $("dialect-cards").replaceChildren(...cards);
}

let invariantsChecked = 0;

async function refreshHealth(live = false) {
  renderCards();
  if (live && Date.now() - invariantsChecked < 5000) return;  // the check walks the whole ledger
  invariantsChecked = Date.now();
  const box = $("invariants");
  const answer = await api("GET", "/invariants");
  if (answer.status === 200) {
    box.className = "status-box ok";
    const d = answer.data;
    const counted = d.players !== undefined ? ` (${txt(d.players)} players, ${txt(d.transactions)} transactions)` : "";
    box.replaceChildren(el("strong", {}, "✓ The books balance"), ` — every balance equals its opening plus its transactions${counted}.`);
  } else {
    box.className = "status-box broken";
    const problems = Array.isArray(answer.data?.problems) ? answer.data.problems : null;
    const offenders = problems
      ? el("ul", {}, ...problems.map((p) => el("li", {}, el("strong", {}, txt(p.problem)), ": ",
        Object.entries(p).filter(([k]) => k !== "problem").map(([k, v]) => `${k} ${Array.isArray(v) ? v.map(txt).join("/") : txt(v)}`).join(", "))))
      : el("pre", {}, pretty(answer.data));
    box.replaceChildren(el("strong", {}, `✗ Invariants broken (HTTP ${answer.status})`), offenders);
  }
  await refreshScorecard();
}

let hasReport = false;

async function refreshScorecard() {
  const panel = $("scorecard-panel");
  if (!hasReport) { panel.hidden = true; return; }
  const answer = await api("GET", "/report");
  if (answer.status !== 200 || typeof answer.data !== "object") { panel.hidden = true; return; }
  const report = answer.data;
  const s = report.summary || {};
  $("scorecard-summary").textContent = `${report.ok ? "✓ passing" : "✗ failing"} — judged ${txt(s.judged)}, `
    + `passed ${txt(s.passed)}, failed ${txt(s.failed)}, warnings ${txt(s.warnings)}`;
  $("scorecard-summary").className = report.ok ? "" : "bad";
  $("findings").replaceChildren(...(report.findings || []).map((f) => el("tr", {},
    cell(f.severity, "sev-" + txt(f.severity)), cell(f.dialect), cell(f.player), cell(f.transaction, "mono"),
    el("td", {}, txt(f.message), f.verdict || f.check ? el("div", { class: "muted" }, txt(f.verdict || f.check)) : ""))));
  if (!(report.findings || []).length) {
    $("findings").append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No findings: nothing the client did needs a look.")));
  }
  panel.hidden = false;
}

// ---------- players ----------

const FLAGS = ["locked", "blocked", "disabled"];
const tenantKey = (dialect) => (dialect === "fizzy" ? "public_key" : "agent");
const playerPath = (p) => `/players/${encodeURIComponent(p.dialect)}/${encodeURIComponent(p.player)}`;

async function savePlayer(player, fields, input) {
  input?.classList.remove("saved", "failed");
  const answer = await api("PUT", playerPath(player), { json: { ...fields, [tenantKey(player.dialect)]: player.tenant } });
  if (!answer.ok) { input?.classList.add("failed"); notice(errorText(answer)); return false; }
  input?.classList.add("saved");
  notice("");
  Object.assign(player, answer.data);
  if (!$("player-detail").hidden && $("player-detail").dataset.key === playerKey(player)) showTransactions(player);
  return true;
}

const playerKey = (p) => `${p.dialect}/${p.tenant}/${p.player}`;

function playerRow(p) {
  const balance = el("input", { class: "balance", value: txt(p.balance), inputmode: "decimal",
    "aria-label": `Balance of ${p.player} (${p.dialect})`, "data-player": p.player, "data-dialect": p.dialect });
  // "change" fires on Enter and when the field loses focus after an edit: one PUT per edit
  balance.addEventListener("change", () => {
    if (!balance.value.trim()) { balance.value = txt(p.balance); return; }  // emptied: nothing to book
    savePlayer(p, { balance: balance.value.trim() }, balance);
  });
  const flags = FLAGS.map((flag) => {
    const box = el("input", { type: "checkbox", checked: Boolean(p[flag]), "aria-label": `${flag}: ${p.player} (${p.dialect})` });
    box.addEventListener("change", () => savePlayer(p, { [flag]: box.checked }, null));
    return el("td", {}, box);
  });
  const history = el("button", { type: "button", "aria-label": `Transactions of ${p.player} (${p.dialect})` }, "Transactions");
  history.addEventListener("click", () => showTransactions(p));
  const row = el("tr", { "data-key": playerKey(p) }, cell(p.dialect), cell(p.tenant), cell(p.player, "mono"),
    el("td", { class: "num" }, balance), cell(p.currency), ...flags, el("td", {}, history));
  const labels = [...$("players").tHead.rows[0].cells].map((th) => th.textContent);
  [...row.cells].forEach((td, i) => { if (labels[i]) td.dataset.label = labels[i]; });
  return row;
}

const MAX_PLAYER_ROWS = 500;     // rows shown; search for the others
const LIVE_PLAYERS = 1000;       // above this many (more than one page of /players), the list refreshes on demand only
let playerCount = 0;

async function refreshPlayers(live = false) {
  if (live && playerCount > LIVE_PLAYERS) return;
  if ($("players").contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;  // not while editing
  const q = $("p-search").value.trim();
  const answer = await api("GET", "/players" + (q ? "?q=" + encodeURIComponent(q) : ""));
  if (!answer.ok) { notice(errorText(answer)); return; }
  playerCount = answer.next ? Infinity : answer.data.length;  // a next page: more than one page holds
  const players = answer.data.slice().sort((a, b) => playerKey(a).localeCompare(playerKey(b)));
  const total = answer.next ? `more than ${players.length}` : `${players.length}`;
  $("player-rows").replaceChildren(...players.slice(0, MAX_PLAYER_ROWS).map(playerRow));
  $("players-info").textContent = players.length > MAX_PLAYER_ROWS || answer.next
    ? `showing ${Math.min(MAX_PLAYER_ROWS, players.length)} of ${total} players: search to narrow`
    : `${players.length} player${players.length === 1 ? "" : "s"}`;
  if (playerCount > LIVE_PLAYERS) $("players-info").textContent += " (not refreshed live: too many; switch views to refresh)";
}

async function showTransactions(p) {
  const answer = await api("GET", `${playerPath(p)}?${tenantKey(p.dialect)}=${encodeURIComponent(p.tenant)}`);
  if (!answer.ok) { notice(errorText(answer)); return; }
  const panel = $("player-detail");
  panel.dataset.key = playerKey(p);
  $("player-title").textContent = `${p.player} (${p.dialect}, ${p.tenant}): ${txt(answer.data.balance)} ${txt(answer.data.currency)}`;
  $("txn-rows").replaceChildren(...answer.data.transactions.map((t) => el("tr", {},
    cell(t.seq), cell(t.kind), cell(t.transaction, "mono"), cell(t.amount, "num"), cell(t.balance_after, "num"),
    cell(t.status), cell(txt(t.time).slice(11, 23), "mono"))));
  panel.hidden = false;
}

function setupPlayers() {
  $("add-player").addEventListener("submit", async (event) => {
    event.preventDefault();
    const dialect = $("p-dialect").value;
    const id = $("p-id").value.trim();
    const fields = {};
    if ($("p-balance").value.trim()) fields.balance = $("p-balance").value.trim();
    const answer = await api("PUT", `/players/${dialect}/${encodeURIComponent(id)}`, { json: fields });
    if (!answer.ok) { notice(errorText(answer)); return; }
    notice(`${answer.status === 201 ? "Added" : "Updated"} ${dialect} player ${id}.`, true);
    $("p-id").value = ""; $("p-balance").value = "";
    refreshPlayers();
  });
  $("p-search").addEventListener("input", () => refreshPlayers());
  $("close-player").addEventListener("click", () => { $("player-detail").hidden = true; });
}

// ---------- scenario ----------

let problemLines = new Map();

function renderGutter() {
  const count = $("yaml").value.split("\n").length;
  const lines = [];
  for (let n = 1; n <= count; n++) {
    const problem = problemLines.get(n);
    lines.push(problem ? el("span", { class: "problem", title: problem }, String(n)) : String(n), "\n");
  }
  $("gutter").replaceChildren(...lines);
  $("gutter").scrollTop = $("yaml").scrollTop;
}

function showProblems(problems) {
  problemLines = new Map();
  const items = problems.map((problem) => {
    const match = /^[^:]*:(\d+): ([\s\S]*)$/.exec(problem);
    const line = match ? Number(match[1]) : 1;
    const message = match ? match[2] : problem;
    problemLines.set(line, (problemLines.has(line) ? problemLines.get(line) + "\n" : "") + message);
    const jump = el("button", { type: "button", "data-line": String(line) }, `line ${line}`);
    jump.addEventListener("click", () => goToLine(line));
    return el("li", { "data-line": String(line) }, jump, ": " + message);
  });
  $("problems").replaceChildren(...items);
  renderGutter();
}

function goToLine(line) {
  const area = $("yaml");
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] ?? "").length);
  area.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(area).lineHeight));
}

async function loadScenario() {
  const answer = await api("GET", "/scenario", { raw: true });
  if (!answer.ok) { notice(errorText(answer)); return; }
  $("yaml").value = answer.data;
  showProblems([]);
  $("scenario-result").textContent = "";
}

async function validateScenario() {
  const answer = await api("POST", "/scenario/validate", { yaml: $("yaml").value });
  if (!answer.ok) { notice(errorText(answer)); return false; }
  showProblems(answer.data.problems || []);
  $("scenario-result").textContent = answer.data.ok
    ? `✓ valid: "${txt(answer.data.name)}", ${txt(answer.data.rules)} rule(s), ${txt(answer.data.players)} player entr${num(answer.data.players) === 1 ? "y" : "ies"}`
    : `✗ ${answer.data.problems.length} problem(s)`;
  $("scenario-result").className = answer.data.ok ? "" : "bad";
  return answer.data.ok;
}

async function applyScenario() {
  const answer = await api("PUT", "/scenario", { yaml: $("yaml").value });
  if (!answer.ok) {
    showProblems(answer.data?.problems || []);
    $("scenario-result").textContent = `✗ not applied: ${answer.data?.problems?.length || 1} problem(s)`;
    $("scenario-result").className = "bad";
    if (!answer.data?.problems) notice(errorText(answer));
    return;
  }
  showProblems([]);
  $("scenario-result").textContent = `✓ applied "${txt(answer.data.name)}": ${txt(answer.data.rules)} rule(s), ledger and journal reset`;
  traffic.entries = [];  // the journal was emptied with the reset
  renderTraffic();
  $("scenario-result").className = "";
  refreshHeader();
  refreshRules();
}

async function refreshRules() {
  const answer = await api("GET", "/rules");
  if (!answer.ok) { notice(errorText(answer)); return; }
  const rows = answer.data.rules.map((rule) => {
    const never = num(rule.hits) === 0;
    const remove = el("button", { type: "button", "aria-label": `Remove rule ${rule.name}` }, "Remove");
    remove.addEventListener("click", async () => {
      const done = await api("DELETE", "/rules/" + encodeURIComponent(rule.name));
      if (!done.ok) notice(errorText(done));
      refreshRules();
    });
    return el("tr", { "data-rule": rule.name, title: JSON.stringify(rule.definition) },
      cell(rule.position), el("td", { class: never ? "never" : "" }, rule.name, never ? " (never fired)" : ""),
      cell(rule.hits, "num hits"), cell(rule.remaining ?? "∞", "num"), el("td", {}, remove));
  });
  $("rule-rows").replaceChildren(...rows);
  if (!rows.length) $("rule-rows").append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No rules: every request gets the normal answer.")));
}

let quickCount = 0;

async function quickAction(event) {
  event.preventDefault();
  const match = {};
  for (const key of ["dialect", "player", "operation"]) {
    const value = $("q-" + key).value.trim();
    if (value) match[key] = value;
  }
  const error = $("q-error").value;
  quickCount += 1;
  const name = `next-${match.operation || "request"}-${match.player || "anyone"}-${Date.now().toString(36)}${quickCount}`;
  const answer = await api("POST", "/rules?position=0", { json: { name, match, respond: { error }, times: 1 } });
  const out = $("quick-result");
  if (!answer.ok) { out.textContent = errorText(answer); out.className = "bad"; return; }
  out.textContent = `Rule "${name}" added first: the next ${match.operation || "request"}${match.player ? " of " + match.player : ""} answers ${error}.`;
  out.className = "";
  refreshRules();
}

function setupScenario() {
  const area = $("yaml");
  area.addEventListener("input", renderGutter);
  area.addEventListener("scroll", () => { $("gutter").scrollTop = area.scrollTop; });
  $("validate").addEventListener("click", validateScenario);
  $("apply").addEventListener("click", applyScenario);
  $("reload-scenario").addEventListener("click", loadScenario);
  $("quick").addEventListener("submit", quickAction);
}

let scenarioLoaded = false;

// ---------- start ----------

async function refreshHeader() {
  const answer = await api("GET", "/health");
  if (answer.ok) $("scenario-name").textContent = `scenario: ${txt(answer.data.scenario)} · v${txt(answer.data.version)}`;
}

async function start() {
  setupTraffic();
  setupPlayers();
  setupScenario();
  refreshers.players = (live) => refreshPlayers(live);
  refreshers.scenario = () => { if (!scenarioLoaded) { scenarioLoaded = true; loadScenario(); } refreshRules(); };
  refreshers.health = refreshHealth;
  const features = await fetch("/_sim/ui/features", { cache: "no-store" }).then((r) => r.json()).catch(() => ({}));
  hasReport = Boolean(features.report);
  setupTabs();
  renderCards();
  trafficInfo();
  refreshHeader().catch((error) => notice(String(error.message || error)));
  $("unlock").addEventListener("click", () => { $("unlock").hidden = true; notice(""); connectFeed(); refresh(current); });
  connectFeed();
}

document.addEventListener("DOMContentLoaded", start);
