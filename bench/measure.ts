/**
 * What one run measures around the load (`loadgen.ts`): the server's CPU time and requests
 * received, Redis command counts, other load on the server's core; and the record the HTTP
 * benchmarks keep of one measured window.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { type LoadRequest, type LoadResult, runLoad } from "./loadgen.js";
import { pinning } from "./processes.js";
import type { ServerSample } from "./scenario.js";
import type { RunResult } from "./stats.js";
import type { MeasuredRun } from "./suite.js";

/** Reads the server's GET /__cpu sample (with the scenario's own fields: `T`). */
export async function readCpu<T extends ServerSample = ServerSample>(port: number): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}/__cpu`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`GET /__cpu answered ${response.status}`);
  return (await response.json()) as T;
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

/** One measured window: the load's result and the samples taken around it. */
export interface LoadWindow<T extends ServerSample = ServerSample> {
  load: LoadResult;
  /** The server's GET /__cpu answers before and after the load. */
  before: T;
  after: T;
  /** INFO commandstats before and after the load. */
  statsBefore: Map<string, number>;
  statsAfter: Map<string, number>;
  /** When pinned: the share of CPU 0 (the server's core) other processes used, 0-1. */
  otherCore0: number | undefined;
  /**
   * When pinned and the load generator's CPU time is known: the share of CPU 1 (the load
   * generator's and Redis's core) that neither used, 0-1.
   */
  otherCore1: number | undefined;
}

/** Server CPU time (user + system) between two samples, µs. */
function cpuUs(before: ServerSample, after: ServerSample): number {
  return after.user - before.user + (after.system - before.system);
}

/**
 * Loads `path` on the server on `port` for `config.durationS` s, sampling its CPU time and
 * requests received (GET /__cpu), INFO commandstats, Redis's CPU time, and CPU 0's and CPU 1's
 * busy time before and after.
 */
export async function measureLoad<T extends ServerSample = ServerSample>(
  admin: Redis,
  port: number,
  path: string,
  request: LoadRequest,
): Promise<LoadWindow<T>> {
  const before = await readCpu<T>(port);
  const statsBefore = await commandStats(admin);
  const redisBefore = await redisCpuUs(admin);
  const serverCore = watchCpu(0);
  const loadCore = watchCpu(1);
  const load = await runLoad(port, config.durationS, path, request);
  const loadCoreEnd = loadCore();
  const after = await readCpu<T>(port);
  const serverCoreEnd = serverCore();
  const redisAfter = await redisCpuUs(admin);
  const statsAfter = await commandStats(admin);
  const otherCore0 = serverCoreEnd(cpuUs(before, after));
  const otherCore1 =
    load.cpuUs === undefined ? undefined : loadCoreEnd(redisAfter - redisBefore + load.cpuUs);
  return { load, before, after, statsBefore, statsAfter, otherCore0, otherCore1 };
}

/**
 * The record of one HTTP run from its measured window: server CPU per request received (the
 * primary figure), the load's throughput, latency and errors, Redis calls and round trips per
 * request; then `extra(perReq)`, the suite's own figures; then the server's first log lines (if
 * any), the other load on CPU 0 (when pinned) and when the run ended.
 */
export function httpRun<T extends ServerSample, X extends object = object>(
  id: MeasuredRun,
  window: LoadWindow<T>,
  serverLog: string,
  extra?: (perReq: (n: number) => number) => X,
): RunResult & X {
  const { load, before, after, otherCore0, otherCore1 } = window;
  const served = after.received - before.received;
  const perReq = (n: number) => (served > 0 ? n / served : Number.NaN);
  const logHead = serverLog.trim().split("\n").slice(0, 5).join("\n");
  return {
    round: id.round,
    variant: id.variant,
    order: id.order,
    cpuUsPerReq: perReq(cpuUs(before, after)),
    reqPerSec: load.reqPerSec,
    p50Ms: load.p50Ms,
    p90Ms: load.p90Ms,
    p99Ms: load.p99Ms,
    requests: load.requests,
    served,
    non2xx: load.non2xx,
    errors: load.errors,
    timeouts: load.timeouts,
    ...redisCounts(window.statsBefore, window.statsAfter, perReq),
    roundTripsPerReq: perReq(after.redisSent - before.redisSent),
    ...(extra === undefined ? {} : extra(perReq)),
    ...(logHead === "" ? {} : { serverLog: logHead }),
    ...(otherCore0 === undefined ? {} : { otherLoadOnServerCore: otherCore0 }),
    ...(otherCore1 === undefined ? {} : { otherLoadOnLoadCore: otherCore1 }),
    at: new Date().toISOString(),
  } as RunResult & X;
}
