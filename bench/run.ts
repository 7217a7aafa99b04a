/**
 * `npm run bench`: throughput, latency, server CPU and Redis round trips of the rate limiter
 * against express-rate-limit + rate-limit-redis, rate-limiter-flexible, a one-EVALSHA floor and
 * bare Express. See bench/README.md.
 *
 * Starts its own redis-server on a free loopback port, then for each round runs every variant
 * once (rotated order), each in a fresh server process pinned to CPU 0, loaded by autocannon
 * pinned to CPU 1 (Redis is pinned to CPU 1 too, so the server has its core to itself).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { freePort, type RedisServer, startRedisServer } from "../test/harness/redis-server.js";
import {
  commandMix,
  compare,
  comparisonLines,
  type RunFailure,
  type RunResult,
  rawTable,
  summarize,
  summaryTable,
} from "./stats.js";
import { DESCRIPTIONS, isVariant, VARIANTS, type Variant } from "./variants.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const AUTOCANNON = join(ROOT, "node_modules", "autocannon", "autocannon.js");

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

function envVariants(): Variant[] {
  const raw = process.env.BENCH_VARIANTS;
  if (raw === undefined || raw.trim() === "") return [...VARIANTS];
  const names = raw.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !isVariant(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_VARIANTS: unknown ${unknown.join(", ")} (known: ${VARIANTS.join(", ")})`,
    );
  const chosen = new Set<Variant>(["bare", ...(names as Variant[])]);
  return VARIANTS.filter((v) => chosen.has(v));
}

const config = {
  durationS: envInt("BENCH_DURATION", 5, 1, 600),
  rounds: envInt("BENCH_ROUNDS", 5, 1, 100),
  warmupS: envInt("BENCH_WARMUP", 1, 0, 60),
  connections: envInt("BENCH_CONNECTIONS", 50, 1, 1000),
  variants: envVariants(),
  pin: process.env.BENCH_PIN !== "0",
};

const SERVER_READY_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 3_000;

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on exit, error or signal.

const children = new Set<ChildProcess>();
let redisPid: number | undefined;
let redisServer: RedisServer | undefined;

function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  children.clear();
  if (redisPid !== undefined) {
    try {
      process.kill(redisPid, "SIGKILL");
    } catch {
      // already gone
    }
    redisPid = undefined;
  }
}

process.on("exit", killAllNow);

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping children and exiting\n`);
    for (const child of children) child.kill("SIGKILL");
    const stopped = redisServer?.stop() ?? Promise.resolve();
    const timer = new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
    void Promise.race([stopped, timer]).finally(() => process.exit(130));
  });
}

const tasksetPath = (() => {
  const found = spawnSync("sh", ["-c", "command -v taskset"], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
})();
const pinning = config.pin && tasksetPath !== undefined && availableParallelism() >= 2;

/** Spawns `command args`, under `taskset -c cpu` when pinning, and tracks the child. */
function spawnTracked(cpu: number, command: string, args: string[]): ChildProcess {
  const child = pinning
    ? spawn(tasksetPath!, ["-c", String(cpu), command, ...args], { cwd: ROOT, stdio: "pipe" })
    : spawn(command, args, { cwd: ROOT, stdio: "pipe" });
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("error", () => children.delete(child));
  return child;
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  child.stdin?.end();
  child.kill("SIGTERM");
  if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
    child.kill("SIGKILL");
    await waitExit(child, STOP_TIMEOUT_MS);
  }
  children.delete(child);
}

// ---------------------------------------------------------------------------------------------
// The server under test and the load generator.

interface ServerHandle {
  child: ChildProcess;
  port: number;
}

async function startServer(variant: Variant, redisUrl: string): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawnTracked(0, process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "bench", "server.ts"),
    variant,
    redisUrl,
    String(port),
  ]);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server ${variant} not ready after ${SERVER_READY_TIMEOUT_MS} ms`)),
        SERVER_READY_TIMEOUT_MS,
      );
      child.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("READY")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(`server ${variant} exited (${code ?? signal}) before ready:\n${stderr.trim()}`),
        );
      });
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, port };
}

interface CpuSample {
  user: number;
  system: number;
  served: number;
}

async function readCpu(port: number): Promise<CpuSample> {
  const response = await fetch(`http://127.0.0.1:${port}/__cpu`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`GET /__cpu answered ${response.status}`);
  return (await response.json()) as CpuSample;
}

/** The parts of autocannon's --json result used here. */
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

async function autocannon(port: number, seconds: number): Promise<AutocannonResult> {
  const child = spawnTracked(1, process.execPath, [
    AUTOCANNON,
    "-c",
    String(config.connections),
    "-d",
    String(seconds),
    "-n",
    "-j",
    `http://127.0.0.1:${port}/api`,
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

const SCRIPT_COMMANDS = new Set(["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]);
/** Commands the runner itself sends, not counted. */
const OWN_COMMANDS = new Set(["info", "flushall"]);

async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const text = await admin.info("commandstats");
  const stats = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match !== null) stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

function statDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    if (OWN_COMMANDS.has(name)) continue;
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
}

// ---------------------------------------------------------------------------------------------
// One run, the rounds, the report.

async function runOnce(
  admin: Redis,
  redisUrl: string,
  variant: Variant,
  round: number,
  order: number,
): Promise<RunResult> {
  await admin.flushall();
  const server = await startServer(variant, redisUrl);
  try {
    if (config.warmupS > 0) await autocannon(server.port, config.warmupS);
    const cpuBefore = await readCpu(server.port);
    const statsBefore = await commandStats(admin);
    const load = await autocannon(server.port, config.durationS);
    const cpuAfter = await readCpu(server.port);
    const statsAfter = await commandStats(admin);

    const served = cpuAfter.served - cpuBefore.served;
    const perReq = (n: number) => (served > 0 ? n / served : Number.NaN);
    const delta = statDelta(statsBefore, statsAfter);
    let total = 0;
    let scripts = 0;
    const commands: Record<string, number> = {};
    for (const [name, calls] of delta) {
      total += calls;
      if (SCRIPT_COMMANDS.has(name)) scripts += calls;
      commands[name] = perReq(calls);
    }
    const cpuUs = cpuAfter.user - cpuBefore.user + (cpuAfter.system - cpuBefore.system);
    return {
      round,
      variant,
      order,
      reqPerSec: load.requests.average,
      p99Ms: load.latency.p99,
      requests: load.requests.total,
      served,
      non2xx: load.non2xx,
      errors: load.errors,
      timeouts: load.timeouts,
      cpuUsPerReq: perReq(cpuUs),
      redisCmdsPerReq: perReq(total),
      scriptCallsPerReq: perReq(scripts),
      commands,
    };
  } finally {
    await stopChild(server.child);
  }
}

/** Round `r`'s order: the variant list rotated by `r`, so each variant takes every slot. */
function roundOrder(variants: readonly Variant[], round: number): Variant[] {
  const shift = round % variants.length;
  return [...variants.slice(shift), ...variants.slice(0, shift)];
}

function pinRedis(admin: Redis): Promise<void> {
  return admin.info("server").then((text) => {
    const pid = Number(/process_id:(\d+)/.exec(text)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) return;
    redisPid = pid;
    if (pinning) spawnSync(tasksetPath!, ["-pc", "1", String(pid)], { stdio: "ignore" });
  });
}

async function main(): Promise<void> {
  if (!existsSync(AUTOCANNON))
    throw new Error(`autocannon not installed (${AUTOCANNON}): run npm install`);
  const startedAt = new Date();
  redisServer = await startRedisServer();
  const admin = new Redis(redisServer.url, { lazyConnect: true });
  await admin.connect();
  const runs: RunResult[] = [];
  const failures: RunFailure[] = [];
  const failed = new Set<Variant>();
  let redisVersion = "unknown";
  try {
    await pinRedis(admin);
    redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";
    const env = {
      node: process.version,
      redis: redisVersion,
      cpu: cpus()[0]?.model ?? "unknown",
      cpus: availableParallelism(),
      pinning: pinning ? "server: CPU 0; autocannon + redis-server: CPU 1" : "none",
      loadAverage1m: loadavg()[0] ?? 0,
    };
    console.log(
      `bench: ${config.rounds} round(s) × ${config.variants.length} variant(s), ${config.durationS} s each ` +
        `(+${config.warmupS} s warm-up), ${config.connections} connections; pinning: ${env.pinning}; ` +
        `node ${env.node}, redis ${env.redis} at ${redisServer.url}; load average ${env.loadAverage1m.toFixed(2)}`,
    );

    for (let round = 1; round <= config.rounds && !interrupted; round++) {
      const order = roundOrder(config.variants, round - 1);
      for (const [slot, variant] of order.entries()) {
        if (interrupted) break;
        if (failed.has(variant)) continue;
        try {
          const run = await runOnce(admin, redisServer.url, variant, round, slot);
          runs.push(run);
          const bad = run.non2xx + run.errors + run.timeouts;
          console.log(
            `[round ${round}/${config.rounds}] ${variant.padEnd(7)} ${Math.round(run.reqPerSec).toString().padStart(6)} req/s  ` +
              `p99 ${run.p99Ms} ms  cpu ${run.cpuUsPerReq.toFixed(1)} µs/req  redis ${run.redisCmdsPerReq.toFixed(2)} cmds/req` +
              (bad > 0
                ? `  !! non-2xx ${run.non2xx}, errors ${run.errors}, timeouts ${run.timeouts}`
                : ""),
          );
        } catch (error) {
          if (interrupted) break;
          const message = error instanceof Error ? error.message : String(error);
          failures.push({ round, variant, error: message });
          failed.add(variant);
          console.log(
            `[round ${round}/${config.rounds}] ${variant}: FAILED, skipped from now on: ${message}`,
          );
        }
      }
    }
    if (interrupted) return;

    const summaries = summarize(runs);
    const comparisons = compare(runs);
    const table = summaryTable(summaries);
    const bad = summaries.filter((s) => s.non2xx + s.errors + s.timeouts > 0);
    const problems = [
      ...bad.map(
        (s) =>
          `- ${s.variant}: non-2xx ${s.non2xx}, socket errors ${s.errors}, timeouts ${s.timeouts} (must be 0)`,
      ),
      ...failures.map(
        (f) => `- ${f.variant} failed in round ${f.round}: ${f.error.split("\n")[0]}`,
      ),
    ];

    console.log(
      `\n${table}\n\nKey comparisons (median of per-round ratios):\n${comparisonLines(comparisons)}\n`,
    );
    if (problems.length > 0) console.log(`Problems:\n${problems.join("\n")}\n`);
    else console.log("Non-2xx responses: 0 in every run.\n");

    const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const markdown = [
      `# Benchmark ${startedAt.toISOString()}`,
      "",
      `${config.rounds} round(s), ${config.durationS} s per run after a ${config.warmupS} s warm-up, ` +
        `${config.connections} connections, one key (one client IP). Node ${env.node}, Redis ${env.redis}, ` +
        `${env.cpus} × ${env.cpu}. Pinning: ${env.pinning}. Load average (1 min) at start: ${env.loadAverage1m.toFixed(2)}.`,
      "",
      "Medians over rounds; ×bare is the median of per-round ratios to `bare`.",
      "",
      table,
      "",
      "## Key comparisons (median of per-round ratios)",
      "",
      comparisonLines(comparisons),
      "",
      "## Problems",
      "",
      problems.length > 0 ? problems.join("\n") : "None: non-2xx responses 0 in every run.",
      "",
      "## Redis calls per request by command (median)",
      "",
      commandMix(runs),
      "",
      "## Variants",
      "",
      config.variants.map((v) => `- ${v}: ${DESCRIPTIONS[v]}`).join("\n"),
      "",
      "## Raw runs",
      "",
      rawTable(runs),
      "",
    ].join("\n");
    writeFileSync(join(dir, `${stamp}.md`), markdown);
    writeFileSync(
      join(dir, `${stamp}.json`),
      `${JSON.stringify({ startedAt: startedAt.toISOString(), config, env, summaries, comparisons, failures, runs }, null, 2)}\n`,
    );
    console.log(`Wrote bench/results/${stamp}.md and .json`);
    if (failures.length > 0 || bad.length > 0) process.exitCode = 1;
  } finally {
    admin.disconnect();
    for (const child of [...children]) await stopChild(child);
    await redisServer.stop();
    redisPid = undefined;
  }
}

main().then(
  () => process.exit(interrupted ? 130 : (process.exitCode ?? 0)),
  (error: unknown) => {
    console.error(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    killAllNow();
    process.exit(1);
  },
);
