/**
 * The session benchmark: express-session on this library's `UserSessionStore` (on ioredis and
 * node-redis; with `trackSessions()`) against connect-redis 8.1 and bare Express, on one
 * logged-in session, for an unmodified read (GET /api, as ../shared/peer-bench's session
 * scenarios) and a write (POST /api). See bench/README.md.
 *
 * Every run logs in once (the scenario's prime: a fresh session), checks that a read finds the
 * user and a write counts, then sends `PROBE_REQUESTS` requests one at a time so the server can
 * tell how many commands each store method sent (under load, calls overlap), then measures
 * under load with the session cookie on every request.
 */
import type { Redis } from "ioredis";
import { BODY_TEXT } from "./body.js";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { runHttpEntry } from "./http-run.js";
import { readCpu } from "./measure.js";
import type { ServerSample } from "./scenario.js";
import { opProblem, SESSION_ENTRIES, sessionReport } from "./session-report.js";
import {
  type OpCount,
  parseSessionEntry,
  SCENARIO_REQUESTS,
  type SessionScenario,
  STORE_OPS,
  type StoreOp,
} from "./session-variants.js";
import { httpNoise, httpProgress, type RunResult } from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

/** Requests sent one at a time before the load, to count the commands of each store method. */
const PROBE_REQUESTS = 20;
/** What `bare` gets as its cookie: as long as a real one, so requests are the same size. */
const BARE_COOKIE = `connect.sid=s%3A${"b".repeat(32)}.${"b".repeat(43)}`;

/** What the server's GET /__cpu answers for a session variant (`bare` has no `ops`). */
type SessionSample = ServerSample & { ops?: Record<StoreOp, OpCount> };

/** One measured run of one variant on one scenario. */
export interface SessionRun extends RunResult {
  /** Store method calls per request in the measured window. */
  opsPerReq: Record<StoreOp, number>;
  /** Probe (requests one at a time): commands the client sent per call of each method (NaN: no call). */
  sentPerOp: Record<StoreOp, number>;
  /** Probe: commands the client sent per request. */
  probeRoundTripsPerReq: number;
}

type Probe = Pick<SessionRun, "sentPerOp" | "probeRoundTripsPerReq">;

async function send(
  port: number,
  method: "GET" | "POST",
  headers: Record<string, string>,
): Promise<{ status: number; body: string; counter: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}/api`, {
    method,
    headers,
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  return {
    status: response.status,
    body: await response.text(),
    counter: response.headers.get("x-counter"),
  };
}

/**
 * Checks that a read finds the logged-in user (the scenario answers 401 otherwise) and that two
 * writes count one after the other; throws otherwise.
 */
async function check(port: number, headers: Record<string, string>, bare: boolean): Promise<void> {
  const read = await send(port, "GET", headers);
  if (read.status !== 200 || read.body !== BODY_TEXT)
    throw new Error(`GET /api answered ${read.status}, ${read.body.length} bytes`);
  const first = await send(port, "POST", headers);
  const second = await send(port, "POST", headers);
  if (first.status !== 200 || second.status !== 200)
    throw new Error(`two POST /api answered ${first.status}, ${second.status}`);
  if (!bare && (first.counter === null || Number(second.counter) !== Number(first.counter) + 1))
    throw new Error(`two POST /api counted ${first.counter}, ${second.counter} (must be n, n + 1)`);
}

/** Sends the scenario's request `PROBE_REQUESTS` times, one at a time; returns per-op counts. */
async function probe(
  port: number,
  headers: Record<string, string>,
  scenario: SessionScenario,
): Promise<Probe> {
  const { method } = SCENARIO_REQUESTS[scenario];
  const before = await readCpu<SessionSample>(port);
  for (let i = 0; i < PROBE_REQUESTS; i++) {
    const answer = await send(port, method, headers);
    if (answer.status !== 200) throw new Error(`probe ${method} /api answered ${answer.status}`);
  }
  const after = await readCpu<SessionSample>(port);
  const sentPerOp = {} as Record<StoreOp, number>;
  for (const op of STORE_OPS) {
    const calls = (after.ops?.[op].calls ?? 0) - (before.ops?.[op].calls ?? 0);
    const sent = (after.ops?.[op].sent ?? 0) - (before.ops?.[op].sent ?? 0);
    sentPerOp[op] = calls > 0 ? sent / calls : Number.NaN;
  }
  return {
    sentPerOp,
    probeRoundTripsPerReq: (after.redisSent - before.redisSent) / PROBE_REQUESTS,
  };
}

function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<SessionRun> {
  const { variant, scenario } = parseSessionEntry(entry);
  const { method, path } = SCENARIO_REQUESTS[scenario];
  return runHttpEntry<SessionSample, Probe, Omit<SessionRun, keyof RunResult>>(
    admin,
    redisUrl,
    { round, variant: entry, order },
    {
      suite: "session",
      variant,
      path,
      method,
      defaultHeaders: { Cookie: BARE_COOKIE },
      prepare: async (server, headers) => {
        await check(server.port, headers, variant === "bare");
        return probe(server.port, headers, scenario);
      },
      extra: (before, after, perReq, probed) => ({
        opsPerReq: Object.fromEntries(
          STORE_OPS.map((op) => [
            op,
            perReq((after.ops?.[op].calls ?? 0) - (before.ops?.[op].calls ?? 0)),
          ]),
        ) as Record<StoreOp, number>,
        sentPerOp: probed!.sentPerOp,
        probeRoundTripsPerReq: probed!.probeRoundTripsPerReq,
      }),
    },
  );
}

export const sessionSuite: SuiteDefinition<SessionRun> = {
  id: "session",
  entries: SESSION_ENTRIES,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections, one session`,
  runOnce,
  noise: httpNoise,
  progress(run) {
    const parts: string[] = [];
    if (parseSessionEntry(run.variant).variant !== "bare") {
      const o = run.opsPerReq;
      parts.push(
        `${(run.roundTripsPerReq ?? Number.NaN).toFixed(2)} round trips/req ` +
          `(get ${o.get.toFixed(2)}, set ${o.set.toFixed(2)}, touch ${o.touch.toFixed(2)} calls/req)`,
      );
    }
    const problem = opProblem(run);
    if (problem !== undefined) parts.push(`!! ${problem}`);
    if (run.serverLog !== undefined) parts.push(`!! server log: ${run.serverLog.split("\n")[0]}`);
    return httpProgress(run, parts.join("  "));
  },
  report: sessionReport,
};
