/**
 * What one run measures: load (autocannon), the server's CPU time, and Redis command counts;
 * and the record the HTTP benchmarks keep of one measured window.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { AUTOCANNON, config, HTTP_TIMEOUT_MS } from "./config.js";
import { pinning, spawnTracked, stopChild, waitExit } from "./processes.js";
import type { RunResult } from "./stats.js";
import type { MeasuredRun } from "./suite.js";

/** The server's CPU time and responses served, from GET /__cpu. */
export interface CpuSample {
  user: number;
  system: number;
  served: number;
}

/** Reads the server's CPU sample (the cache server answers more fields: `T`). */
export async function readCpu<T extends CpuSample = CpuSample>(port: number): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}/__cpu`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`GET /__cpu answered ${response.status}`);
  return (await response.json()) as T;
}

/** The parts of autocannon's --json result used here. */
export interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** What every request of an autocannon run sends besides its path (default: GET, no headers). */
export interface LoadRequest {
  method?: "GET" | "POST";
  /** Header name → value, sent on every request (e.g. a session cookie). */
  headers?: Record<string, string>;
}

/** Runs autocannon against the server's `path` for `seconds` and returns its JSON result. */
export async function autocannon(
  port: number,
  seconds: number,
  path = "/api",
  request: LoadRequest = {},
): Promise<AutocannonResult> {
  const extra = [
    ...(request.method === undefined ? [] : ["-m", request.method]),
    ...Object.entries(request.headers ?? {}).flatMap(([name, value]) => ["-H", `${name}:${value}`]),
  ];
  const child = spawnTracked(1, process.execPath, [
    AUTOCANNON,
    "-c",
    String(config.connections),
    "-d",
    String(seconds),
    "-n",
    "-j",
    ...extra,
    `http://127.0.0.1:${port}${path}`,
  ]);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString();
  });
  const exited = await waitExit(child, (seconds + 30) * 1000);
  if (!exited) {
    await stopChild(child);
    throw new Error(`autocannon did not finish within ${seconds + 30} s`);
  }
  if (child.exitCode !== 0)
    throw new Error(`autocannon exited ${child.exitCode ?? child.signalCode}: ${stderr.trim()}`);
  try {
    return JSON.parse(stdout) as AutocannonResult;
  } catch {
    throw new Error(`autocannon printed no JSON: ${stdout.slice(0, 500)} ${stderr.slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis command counts.

/** Script commands, counted as script calls. */
export const SCRIPT_COMMANDS = new Set([
  "eval",
  "evalsha",
  "eval_ro",
  "evalsha_ro",
  "fcall",
  "fcall_ro",
]);
/** Commands the runner itself sends, not counted. */
const OWN_COMMANDS = new Set(["info", "flushall"]);

/** Calls per command from INFO commandstats. */
export async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const text = await admin.info("commandstats");
  const stats = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match !== null) stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

/** Calls made between two samples, less the runner's own commands. */
export function statDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    if (OWN_COMMANDS.has(name)) continue;
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
}

/**
 * Per-request Redis counts from two INFO commandstats samples: all calls (script calls and the
 * commands they ran), script calls, and calls by command name.
 */
export function redisCounts(
  before: Map<string, number>,
  after: Map<string, number>,
  perReq: (n: number) => number,
): { redisCmdsPerReq: number; scriptCallsPerReq: number; commands: Record<string, number> } {
  let total = 0;
  let scripts = 0;
  const commands: Record<string, number> = {};
  for (const [name, calls] of statDelta(before, after)) {
    total += calls;
    if (SCRIPT_COMMANDS.has(name)) scripts += calls;
    commands[name] = perReq(calls);
  }
  return { redisCmdsPerReq: perReq(total), scriptCallsPerReq: perReq(scripts), commands };
}

/** CPU time the Redis server used so far (user + system, main and background threads), µs. */
export async function redisCpuUs(admin: Redis): Promise<number> {
  const text = await admin.info("cpu");
  const seconds = (name: string) =>
    Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(text)?.[1] ?? 0);
  return (seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1e6;
}

// ---------------------------------------------------------------------------------------------
// Other load on a core.

const CLOCK_TICKS = (() => {
  const ticks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

/**
 * Busy time of CPU `cpu` since boot (user, nice, system, irq, softirq, steal), in µs, from
 * /proc/stat; undefined where there is none (not Linux).
 */
export function cpuBusyUs(cpu: number): number | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/stat", "utf8");
  } catch {
    return undefined;
  }
  const line = text.split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (line === undefined) return undefined;
  const [user, nice, system, , , irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const ticks = [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0);
  return (ticks * 1e6) / CLOCK_TICKS;
}

/**
 * Starts watching CPU `cpu` over a measured window. Calling the function returned ends the
 * window; the function that returns, given the CPU time (µs) the measured processes used there,
 * gives the share of the core other processes (and interrupts) used, 0-1; undefined when not
 * pinned, or where there is no /proc/stat.
 */
export function watchCpu(cpu: number): () => (ownCpuUs: number) => number | undefined {
  const busyBefore = pinning ? cpuBusyUs(cpu) : undefined;
  const wallBefore = performance.now();
  return () => {
    const busyAfter = pinning ? cpuBusyUs(cpu) : undefined;
    const wallUs = (performance.now() - wallBefore) * 1000;
    return (ownCpuUs) =>
      busyBefore === undefined || busyAfter === undefined
        ? undefined
        : Math.max(0, busyAfter - busyBefore - ownCpuUs) / wallUs;
  };
}

// ---------------------------------------------------------------------------------------------
// One measured window of an HTTP benchmark, and its record.

/** A server's CPU sample; the cache and session servers also count what their client sent. */
type HttpSample = CpuSample & { redisSent?: number };

/** One measured window: autocannon's result and the samples taken around it. */
export interface LoadWindow<T extends HttpSample = CpuSample> {
  load: AutocannonResult;
  /** The server's GET /__cpu answers before and after the load. */
  before: T;
  after: T;
  /** INFO commandstats before and after the load. */
  statsBefore: Map<string, number>;
  statsAfter: Map<string, number>;
  /** With `watchCore`, when pinned: the share of CPU 0 other processes used, 0-1. */
  otherCore0: number | undefined;
}

/** What `measureLoad` loads and watches. */
export interface LoadOptions {
  /** The path loaded (default: /api). */
  path?: string;
  request?: LoadRequest;
  /** Whether to watch the other load on CPU 0, the server's core (default: no). */
  watchCore?: boolean;
}

/** Server CPU time (user + system) between two samples, µs. */
function cpuUs(before: CpuSample, after: CpuSample): number {
  return after.user - before.user + (after.system - before.system);
}

/**
 * Loads the server on `port` for `config.durationS` s, sampling its CPU time (GET /__cpu) and
 * INFO commandstats before and after.
 */
export async function measureLoad<T extends HttpSample = CpuSample>(
  admin: Redis,
  port: number,
  { path, request, watchCore = false }: LoadOptions = {},
): Promise<LoadWindow<T>> {
  const before = await readCpu<T>(port);
  const serverCore = watchCore ? watchCpu(0) : undefined;
  const statsBefore = await commandStats(admin);
  const load = await autocannon(port, config.durationS, path, request);
  const after = await readCpu<T>(port);
  const statsAfter = await commandStats(admin);
  // CPU 0 is the server's: what else ran there while it was measured.
  const otherCore0 = serverCore?.()(cpuUs(before, after));
  return { load, before, after, statsBefore, statsAfter, otherCore0 };
}

/**
 * The record of one HTTP run from its measured window: load, errors, server CPU and Redis
 * calls per request, and round trips per request where the server counts what its client sent
 * (`redisSent`); then `extra(perReq)`, the suite's own figures; then, when `serverLog` (the
 * server's output) is given, its first lines (if any), the other load on CPU 0 (if watched)
 * and when the run ended.
 */
export function httpRun<T extends HttpSample, X extends object = object>(
  id: MeasuredRun,
  window: LoadWindow<T>,
  extra?: (perReq: (n: number) => number) => X,
  serverLog?: string,
): RunResult & X {
  const { load, before, after, otherCore0 } = window;
  const served = after.served - before.served;
  const perReq = (n: number) => (served > 0 ? n / served : Number.NaN);
  const logHead = serverLog?.trim().split("\n").slice(0, 5).join("\n");
  const sent =
    before.redisSent === undefined || after.redisSent === undefined
      ? {}
      : { roundTripsPerReq: perReq(after.redisSent - before.redisSent) };
  const ending =
    serverLog === undefined
      ? {}
      : {
          ...(logHead === "" ? {} : { serverLog: logHead }),
          ...(otherCore0 === undefined ? {} : { otherLoadOnServerCore: otherCore0 }),
          at: new Date().toISOString(),
        };
  return {
    round: id.round,
    variant: id.variant,
    order: id.order,
    reqPerSec: load.requests.average,
    p99Ms: load.latency.p99,
    requests: load.requests.total,
    served,
    non2xx: load.non2xx,
    errors: load.errors,
    timeouts: load.timeouts,
    cpuUsPerReq: perReq(cpuUs(before, after)),
    ...redisCounts(window.statsBefore, window.statsAfter, perReq),
    ...sent,
    ...(extra === undefined ? {} : extra(perReq)),
    ...ending,
  } as RunResult & X;
}
