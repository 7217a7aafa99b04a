/**
 * The session benchmark: express-session on this library's `UserSessionStore` (on ioredis and
 * node-redis; with `trackSessions()`) against plain connect-redis and bare Express, on one
 * logged-in session, for an unmodified read (`GET /read`) and a write (`POST /write`). See bench/README.md.
 *
 * Every run logs in once (a fresh session), checks that a read sees the user and a write
 * counts, then sends `PROBE_REQUESTS` requests one at a time so the server can tell how many
 * commands each store method sent (under load, calls overlap), then measures under load with
 * the session cookie on every request.
 */
import type { Redis } from "ioredis";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { autocannon, httpRun, type LoadRequest, measureLoad, readCpu } from "./measure.js";
import { startServer, stopChild } from "./processes.js";
import { opProblem, SESSION_ENTRIES, sessionReport } from "./session-report.js";
import type { SessionServerSample } from "./session-server.js";
import {
  BENCH_USER,
  parseSessionEntry,
  SCENARIO_REQUESTS,
  type SessionScenario,
  STORE_OPS,
  type StoreOp,
} from "./session-variants.js";
import { httpProgress, percent, type RunResult } from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

/** Requests sent one at a time before the load, to count the commands of each store method. */
const PROBE_REQUESTS = 20;
/** What `bare` gets as its cookie: as long as a real one, so requests are the same size. */
const BARE_COOKIE = `connect.sid=s%3A${"b".repeat(32)}.${"b".repeat(43)}`;

/** One measured run of one variant on one scenario. */
export interface SessionRun extends RunResult {
  /** Store method calls per request in the measured window. */
  opsPerReq: Record<StoreOp, number>;
  /** Probe (requests one at a time): commands the client sent per call of each method (NaN: no call). */
  sentPerOp: Record<StoreOp, number>;
  /** Probe: commands the client sent per request. */
  probeRoundTripsPerReq: number;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  setCookie: string | null;
}

async function send(
  port: number,
  method: "GET" | "POST",
  path: string,
  cookie?: string,
): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: cookie === undefined ? {} : { cookie },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { unparsed: text.slice(0, 200) };
  }
  return { status: response.status, body, setCookie: response.headers.get("set-cookie") };
}

/** Logs in (a new session, saved) and returns its cookie, `name=value`. */
async function login(port: number): Promise<string> {
  const answer = await send(port, "POST", "/login");
  const cookie = answer.setCookie?.split(";")[0];
  if (answer.status !== 200 || cookie === undefined || !cookie.startsWith("connect.sid="))
    throw new Error(`POST /login answered ${answer.status}, set-cookie ${answer.setCookie}`);
  return cookie;
}

/** Checks that a read sees the logged-in user and that writes count; throws otherwise. */
async function check(port: number, cookie: string): Promise<void> {
  const read = await send(port, "GET", SCENARIO_REQUESTS.read.path, cookie);
  if (read.status !== 200 || read.body.userId !== BENCH_USER)
    throw new Error(`GET /read answered ${read.status} ${JSON.stringify(read.body)}`);
  const first = await send(port, "POST", SCENARIO_REQUESTS.write.path, cookie);
  const second = await send(port, "POST", SCENARIO_REQUESTS.write.path, cookie);
  const counts = [first.body.counter, second.body.counter];
  if (
    first.status !== 200 ||
    second.status !== 200 ||
    typeof counts[0] !== "number" ||
    counts[1] !== counts[0] + 1 ||
    second.body.userId !== BENCH_USER
  )
    throw new Error(
      `two POST /write answered ${first.status} ${JSON.stringify(first.body)}, ${second.status} ${JSON.stringify(second.body)}`,
    );
}

/** Sends the scenario's request `PROBE_REQUESTS` times, one at a time; returns per-op counts. */
async function probe(
  port: number,
  cookie: string,
  scenario: SessionScenario,
): Promise<Pick<SessionRun, "sentPerOp" | "probeRoundTripsPerReq">> {
  const { method, path } = SCENARIO_REQUESTS[scenario];
  const before = await readCpu<SessionServerSample>(port);
  for (let i = 0; i < PROBE_REQUESTS; i++) {
    const answer = await send(port, method, path, cookie);
    if (answer.status !== 200) throw new Error(`probe ${method} ${path} answered ${answer.status}`);
  }
  const after = await readCpu<SessionServerSample>(port);
  const sentPerOp = {} as Record<StoreOp, number>;
  for (const op of STORE_OPS) {
    const calls = after.ops[op].calls - before.ops[op].calls;
    sentPerOp[op] = calls > 0 ? (after.ops[op].sent - before.ops[op].sent) / calls : Number.NaN;
  }
  return {
    sentPerOp,
    probeRoundTripsPerReq: (after.redisSent - before.redisSent) / PROBE_REQUESTS,
  };
}

async function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<SessionRun> {
  const { variant, scenario } = parseSessionEntry(entry);
  const { method, path } = SCENARIO_REQUESTS[scenario];
  await admin.flushall();
  const server = await startServer(entry, "session-server.ts", [variant, redisUrl]);
  try {
    const cookie = variant === "bare" ? BARE_COOKIE : await login(server.port);
    await check(server.port, cookie);
    const probed = await probe(server.port, cookie, scenario);
    const request: LoadRequest = { method, headers: { cookie } };
    if (config.warmupS > 0) await autocannon(server.port, config.warmupS, path, request);
    const window = await measureLoad<SessionServerSample>(admin, server.port, {
      path,
      request,
      watchCore: true,
    });
    const { before, after } = window;
    return httpRun(
      { round, variant: entry, order },
      window,
      (perReq) => ({
        opsPerReq: Object.fromEntries(
          STORE_OPS.map((op) => [op, perReq(after.ops[op].calls - before.ops[op].calls)]),
        ) as Record<StoreOp, number>,
        ...probed,
      }),
      server.log(),
    );
  } finally {
    await stopChild(server.child);
  }
}

export const sessionSuite: SuiteDefinition<SessionRun> = {
  id: "session",
  entries: SESSION_ENTRIES,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections, one session`,
  runOnce,
  progress(run) {
    const parts: string[] = [];
    if (parseSessionEntry(run.variant).variant !== "bare") {
      const o = run.opsPerReq;
      parts.push(
        `${(run.roundTripsPerReq ?? Number.NaN).toFixed(2)} round trips/req ` +
          `(get ${o.get.toFixed(2)}, set ${o.set.toFixed(2)}, touch ${o.touch.toFixed(2)} calls/req)`,
      );
    }
    if (run.otherLoadOnServerCore !== undefined)
      parts.push(`other load on CPU 0 ${percent(run.otherLoadOnServerCore)}`);
    const problem = opProblem(run);
    if (problem !== undefined) parts.push(`!! ${problem}`);
    if (run.serverLog !== undefined) parts.push(`!! server log: ${run.serverLog.split("\n")[0]}`);
    return httpProgress(run, parts.join("  "));
  },
  report: sessionReport,
};
