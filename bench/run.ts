/**
 * `npm run bench`: two benchmarks, each against bare Express (see bench/README.md).
 *
 * - rate limit: throughput, latency, server CPU and Redis round trips of the rate limiter
 *   against express-rate-limit + rate-limit-redis, rate-limiter-flexible and a one-EVALSHA
 *   floor (`rate-limit-suite.ts`);
 * - response cache: `cacheResponse()` hits on Redis, on Redis behind the in-process tier and in
 *   memory only, against apicache, on an immediate and a 20 ms handler (`cache-suite.ts`).
 *
 * `--only rate-limit` or `--only cache` (or `BENCH_ONLY`) runs one of them.
 *
 * Starts its own redis-server on a free loopback port, then for each round runs every variant
 * once (rotated order), each in a fresh server process pinned to CPU 0, loaded by autocannon
 * pinned to CPU 1 (Redis is pinned to CPU 1 too, so the server has its core to itself).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/harness/redis-server.js";
import { cacheSuite } from "./cache-suite.js";
import { AUTOCANNON, config, ROOT } from "./config.js";
import { children, killAllNow, pinning, pinRedis, state, stopChild } from "./processes.js";
import { rateLimitSuite } from "./rate-limit-suite.js";
import type { RunFailure, RunResult } from "./stats.js";
import type { BenchEnv, SuiteDefinition } from "./suite.js";

/** Round `r`'s order: the entry list rotated by `r`, so entries move through the slots. */
function roundOrder(entries: readonly string[], round: number): string[] {
  const shift = round % entries.length;
  return [...entries.slice(shift), ...entries.slice(0, shift)];
}

/** Runs every round of `suite`; returns its runs and failures (empty when interrupted). */
async function runSuite(
  suite: SuiteDefinition,
  admin: Redis,
  redisUrl: string,
): Promise<{ runs: RunResult[]; failures: RunFailure[] }> {
  const runs: RunResult[] = [];
  const failures: RunFailure[] = [];
  const failed = new Set<string>();
  const width = Math.max(...suite.entries.map((e) => e.length));
  for (let round = 1; round <= config.rounds && !state.interrupted; round++) {
    const order = roundOrder(suite.entries, round - 1);
    for (const [slot, entry] of order.entries()) {
      if (state.interrupted) break;
      if (failed.has(entry)) continue;
      try {
        const run = await suite.runOnce(admin, redisUrl, entry, round, slot);
        runs.push(run);
        const bad = run.non2xx + run.errors + run.timeouts;
        const extra = suite.progress?.(run) ?? "";
        console.log(
          `[${suite.id} ${round}/${config.rounds}] ${entry.padEnd(width)} ${Math.round(run.reqPerSec).toString().padStart(6)} req/s  ` +
            `p99 ${run.p99Ms} ms  cpu ${run.cpuUsPerReq.toFixed(1)} µs/req  redis ${run.redisCmdsPerReq.toFixed(2)} cmds/req` +
            (extra === "" ? "" : `  ${extra}`) +
            (bad > 0
              ? `  !! non-2xx ${run.non2xx}, errors ${run.errors}, timeouts ${run.timeouts}`
              : ""),
        );
      } catch (error) {
        if (state.interrupted) break;
        const message = error instanceof Error ? error.message : String(error);
        failures.push({ round, variant: entry, error: message });
        failed.add(entry);
        console.log(
          `[${suite.id} ${round}/${config.rounds}] ${entry}: FAILED, skipped from now on: ${message}`,
        );
      }
    }
  }
  return { runs, failures };
}

/** The commit checked out, and the tracked files changed since (the code measured). */
function gitState(): string {
  const git = (...args: string[]) =>
    spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trimEnd() ?? "";
  const commit = git("rev-parse", "--short", "HEAD") || "unknown";
  const changed = git("status", "--porcelain", "--untracked-files=no")
    .split("\n")
    .map((line) => line.slice(3))
    .filter((path) => path !== "");
  return changed.length === 0
    ? commit
    : `${commit} with uncommitted changes to ${changed.join(", ")}`;
}

const SUITE_DEFINITIONS: Record<(typeof config.suites)[number], SuiteDefinition> = {
  "rate-limit": rateLimitSuite,
  cache: cacheSuite,
};

async function main(): Promise<void> {
  if (!existsSync(AUTOCANNON))
    throw new Error(`autocannon not installed (${AUTOCANNON}): run npm install`);
  if (config.suites.length === 0)
    throw new Error("nothing to run: --only / BENCH_ONLY and BENCH_VARIANTS select no variant");
  const startedAt = new Date();
  const loadAverage1m = loadavg()[0] ?? 0;
  state.redisServer = await startRedisServer();
  const admin = new Redis(state.redisServer.url, { lazyConnect: true });
  await admin.connect();
  try {
    await pinRedis(admin);
    const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";
    const env: BenchEnv = {
      node: process.version,
      redis: redisVersion,
      cpu: cpus()[0]?.model ?? "unknown",
      cpus: availableParallelism(),
      pinning: pinning ? "server: CPU 0; autocannon + redis-server: CPU 1" : "none",
      loadAverage1m,
      git: gitState(),
    };
    const suites = config.suites.map((id) => SUITE_DEFINITIONS[id]);
    const runsPer = suites
      .map((s) => `${s.id}: ${config.rounds} round(s) × ${s.entries.length} run(s)`)
      .join(", ");
    console.log(
      `bench: ${runsPer}; ${config.durationS} s each ` +
        `(+${config.warmupS} s warm-up), ${config.connections} connections; pinning: ${env.pinning}; ` +
        `node ${env.node}, redis ${env.redis} at ${state.redisServer.url}; load average ${env.loadAverage1m.toFixed(2)}; ` +
        `code: ${env.git}`,
    );

    const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
    const dir = join(ROOT, "bench", "results");
    for (const suite of suites) {
      const { runs, failures } = await runSuite(suite, admin, state.redisServer.url);
      if (state.interrupted) return;
      const report = suite.report(runs, failures, env, startedAt);
      console.log(report.printed);
      mkdirSync(dir, { recursive: true });
      const base = `${stamp}-${suite.id}`;
      writeFileSync(join(dir, `${base}.md`), report.markdown);
      writeFileSync(
        join(dir, `${base}.json`),
        `${JSON.stringify({ startedAt: startedAt.toISOString(), suite: suite.id, config, env, ...report.json, failures, runs }, null, 2)}\n`,
      );
      console.log(`Wrote bench/results/${base}.md and .json\n`);
      if (report.failed) process.exitCode = 1;
    }
  } finally {
    admin.disconnect();
    for (const child of [...children]) await stopChild(child);
    await state.redisServer.stop();
    state.redisPid = undefined;
  }
}

main().then(
  () => process.exit(state.interrupted ? 130 : (process.exitCode ?? 0)),
  (error: unknown) => {
    console.error(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    killAllNow();
    process.exit(1);
  },
);
