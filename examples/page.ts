/** The example's one HTML page: buttons to try the rate limits by hand. No build step. */
export function page(backend: "redis" | "memory"): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>express-redis-kit example</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  button { font: inherit; padding: .3rem .8rem; margin-right: .5rem; }
  pre { background: #f4f4f4; padding: .8rem; overflow: auto; min-height: 6rem; }
  .ok { color: #176c2d; } .limited { color: #a11; }
</style>
</head>
<body>
<h1>express-redis-kit example</h1>
<p>Backend: <strong id="backend">${backend}</strong>. Every <code>/api</code> route allows a burst of
5 requests per 10 s and 100 per hour (two policies, one atomic round trip).
<code>/api/report</code> takes half a second to compute and is cached for 30 s (watch
<code>X-Cache</code>, <code>Age</code> and the time taken). <code>/api/imports</code> holds a
lock per client for its 1.5 s: a second import at the same time gets 409 with
<code>Retry-After</code>. Log in as <code>alice</code> (password <code>demo</code>) in two
browsers (or a private window) to see both sessions listed, and log the other one out.</p>
<p>
  <button id="hello">GET /api/hello</button>
  <button id="ten">10 × GET /api/hello</button>
  <button id="login">POST /api/login (wrong password)</button>
  <button id="signin">Log in as alice</button>
  <button id="sessions">My sessions</button>
  <button id="others">Log out everywhere else</button>
  <button id="logout">Log out</button>
  <button id="reset">Reset my limits</button>
  <button id="report">GET /api/report (cached, slow)</button>
  <button id="purge">Purge the report</button>
  <button id="imports">2 × POST /api/imports at once (locked)</button>
  <a href="/health/redis">/health/redis</a>
</p>
<pre id="out">Click a button.</pre>
<script>
const out = document.getElementById("out");
async function call(method, url, body) {
  const started = performance.now();
  const res = await fetch(url, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const headers = ["ratelimit", "ratelimit-policy", "retry-after", "x-cache", "cache-status", "age"]
    .filter((h) => res.headers.has(h)).map((h) => h + ": " + res.headers.get(h)).join("\\n");
  const text = await res.text();
  const ms = Math.round(performance.now() - started);
  return { status: res.status, line: method + " " + url + " → " + res.status + " in " + ms + " ms", headers, text };
}
function show(results) {
  out.innerHTML = "";
  for (const r of results) {
    const div = document.createElement("div");
    div.className = r.status === 429 || r.status === 409 ? "limited" : "ok";
    div.textContent = r.line + (r.headers ? "\\n" + r.headers : "") + "\\n" + r.text + "\\n";
    out.appendChild(div);
  }
}
document.getElementById("hello").onclick = async () => show([await call("GET", "/api/hello")]);
document.getElementById("ten").onclick = async () => {
  const results = [];
  for (let i = 0; i < 10; i++) results.push(await call("GET", "/api/hello"));
  show(results);
};
document.getElementById("login").onclick = async () => show([await call("POST", "/api/login", { account: "alice" })]);
document.getElementById("signin").onclick = async () => show([await call("POST", "/api/login", { account: "alice", password: "demo" })]);
document.getElementById("sessions").onclick = async () => show([await call("GET", "/api/sessions")]);
document.getElementById("others").onclick = async () => show([await call("POST", "/api/sessions/revoke-others")]);
document.getElementById("logout").onclick = async () => show([await call("POST", "/api/logout")]);
document.getElementById("report").onclick = async () => show([await call("GET", "/api/report")]);
document.getElementById("purge").onclick = async () => show([await call("POST", "/api/report/purge")]);
document.getElementById("imports").onclick = async () =>
  show(await Promise.all([call("POST", "/api/imports"), call("POST", "/api/imports")]));
document.getElementById("reset").onclick = async () => show([await call("POST", "/api/limits/reset")]);
</script>
</body>
</html>
`;
}
