/**
 * The example's one HTML page (no build step): log in, try the limits, the cache, the lock,
 * trades and sessions by hand, with a live panel fed by Server-Sent Events.
 */
export function page(backend: "redis" | "memory"): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>express-redis-kit example</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
  section { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; margin: .8rem 0; }
  h2 { font-size: 1rem; margin: .2rem 0 .5rem; }
  button, input { font: inherit; padding: .25rem .7rem; margin: .15rem .3rem .15rem 0; }
  pre { background: #f4f4f4; padding: .6rem; overflow: auto; max-height: 14rem; margin: .4rem 0 0; }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1rem; }
  .ok { color: #176c2d; } .bad { color: #a11; } .muted { color: #666; }
  #panel span { display: inline-block; min-width: 9rem; }
  li { margin: .2rem 0; }
</style>
</head>
<body>
<h1>express-redis-kit example</h1>
<p>Backend: <strong id="backend">${backend}</strong>. Accounts <code>alice</code> and <code>bob</code>,
password <code>demo</code>. Log in as the same user in two browsers (or a private window): each
lists the other's session and can log it out, live.</p>

<section id="auth">
  <h2>Session</h2>
  <div id="whoami" class="muted">Not logged in.</div>
  <form id="login-form">
    <input id="account" placeholder="account" value="alice" autocomplete="username">
    <input id="password" type="password" placeholder="password" value="demo" autocomplete="current-password">
    <button id="login" type="submit">Log in</button>
    <button id="logout" type="button">Log out</button>
  </form>
</section>

<section id="panel">
  <h2>Live panel</h2>
  <div><span>cache hit ratio</span><strong id="hit-ratio">–</strong></div>
  <div><span>rate-limit blocks</span><strong id="blocks">–</strong></div>
  <div><span>my active sessions</span><strong id="active">–</strong></div>
  <div><span>events</span><strong id="stream">closed</strong></div>
  <pre id="events"></pre>
</section>

<div class="grid">
<section>
  <h2>Sessions</h2>
  <ul id="sessions-list"></ul>
  <button id="refresh-sessions">Refresh</button>
  <button id="revoke-others">Log out everywhere else</button>
</section>
<section>
  <h2>Try it</h2>
  <button id="hello">10 × GET /api/hello</button>
  <button id="reset">Reset my limits</button><br>
  <button id="stats">GET /api/portfolio/stats (cached, slow)</button>
  <button id="purge">Purge my stats</button><br>
  <input id="symbol" value="ACME" size="6"> <input id="quantity" value="10" size="4">
  <button id="trade">POST /api/trades</button><br>
  <button id="imports">2 × POST /api/imports at once (locked)</button><br>
  <a href="/health/redis">/health/redis</a> · <a href="/metrics">/metrics</a>
</section>
</div>
<pre id="out">Results appear here.</pre>

<script>
const $ = (id) => document.getElementById(id);
let me = { user: null, session: null };
let events = null;
const recent = [];

async function call(method, url, body) {
  const started = performance.now();
  const res = await fetch(url, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const headers = ["ratelimit", "retry-after", "x-cache", "cache-status", "age"]
    .filter((h) => res.headers.has(h)).map((h) => h + ": " + res.headers.get(h)).join("\\n");
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  const ms = Math.round(performance.now() - started);
  return { status: res.status, json, line: method + " " + url + " → " + res.status + " in " + ms + " ms", headers, text };
}
function show(results) {
  const out = $("out");
  out.innerHTML = "";
  for (const r of results) {
    const div = document.createElement("div");
    div.className = r.status >= 400 ? "bad" : "ok";
    div.textContent = r.line + (r.headers ? "\\n" + r.headers : "") + "\\n" + r.text + "\\n";
    out.appendChild(div);
  }
}
function log(line) {
  recent.unshift(new Date().toLocaleTimeString() + "  " + line);
  recent.length = Math.min(recent.length, 30);
  $("events").textContent = recent.join("\\n");
}

function setUser(next, why) {
  me = next;
  $("whoami").textContent = me.user ? "Logged in as " + me.user + " (session " + me.session + ")" : (why || "Not logged in.");
  $("whoami").className = me.user ? "ok" : why ? "bad" : "muted";
  document.body.dataset.user = me.user || "";
  if (events) { events.close(); events = null; $("stream").textContent = "closed"; }
  if (me.user) {
    events = new EventSource("/events");
    events.onopen = () => { $("stream").textContent = "open"; };
    events.onerror = () => { $("stream").textContent = "reconnecting"; };
    for (const type of ["trade", "import.progress"]) {
      events.addEventListener(type, (e) => log(type + " " + JSON.stringify(JSON.parse(e.data).data)));
    }
    events.addEventListener("session.revoked", () => {
      log("this session was revoked elsewhere");
      setUser({ user: null, session: null }, "You were logged out: this session was revoked from another device.");
    });
    refreshSessions();
  } else {
    $("sessions-list").innerHTML = "";
  }
}

async function refreshSessions() {
  if (!me.user) return;
  const r = await call("GET", "/api/sessions");
  if (r.status === 401) return setUser({ user: null, session: null }, "Your session has ended.");
  const list = $("sessions-list");
  list.innerHTML = "";
  for (const s of r.json || []) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    li.className = s.current ? "current" : "other";
    const when = s.lastActiveAt ? new Date(s.lastActiveAt).toLocaleTimeString() : "?";
    li.textContent = (s.current ? "this browser" : (s.userAgent || "unknown device").slice(0, 60)) + " · " + (s.ip || "?") + " · active " + when + " ";
    if (!s.current) {
      const b = document.createElement("button");
      b.className = "revoke";
      b.textContent = "Log out";
      b.onclick = async () => { show([await call("DELETE", "/api/sessions/" + s.id)]); refreshSessions(); };
      li.appendChild(b);
    }
    list.appendChild(li);
  }
}

async function refreshPanel() {
  if (!me.user) return;
  const r = await call("GET", "/api/dashboard");
  if (r.status !== 200) return;
  const d = r.json;
  $("hit-ratio").textContent = d.cache.hitRatio === null ? "–" : Math.round(d.cache.hitRatio * 100) + " % (" + d.cache.hits + " hits, " + d.cache.misses + " misses)";
  $("blocks").textContent = d.rateLimit.api.blocked + " API, " + d.rateLimit.login.blocked + " logins";
  $("active").textContent = String(d.sessions.mine);
}
setInterval(refreshPanel, 2000);

$("login-form").onsubmit = async (e) => {
  e.preventDefault();
  const r = await call("POST", "/login", { account: $("account").value, password: $("password").value });
  show([r]);
  if (r.status === 200) setUser(r.json);
};
$("logout").onclick = async () => { show([await call("POST", "/logout")]); setUser({ user: null, session: null }); };
$("refresh-sessions").onclick = refreshSessions;
$("revoke-others").onclick = async () => { show([await call("POST", "/api/sessions/revoke-others")]); refreshSessions(); };
$("hello").onclick = async () => {
  const results = [];
  for (let i = 0; i < 10; i++) results.push(await call("GET", "/api/hello"));
  show(results);
};
$("reset").onclick = async () => show([await call("POST", "/api/limits/reset")]);
$("stats").onclick = async () => show([await call("GET", "/api/portfolio/stats")]);
$("purge").onclick = async () => show([await call("POST", "/api/portfolio/stats/purge")]);
$("trade").onclick = async () => show([await call("POST", "/api/trades", { symbol: $("symbol").value, quantity: Number($("quantity").value) })]);
$("imports").onclick = async () => show(await Promise.all([call("POST", "/api/imports"), call("POST", "/api/imports")]));

call("GET", "/api/me").then((r) => setUser(r.json));
</script>
</body>
</html>
`;
}
