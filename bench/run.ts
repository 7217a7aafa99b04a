/**
 * `npm run bench`: four benchmarks (see bench/README.md).
 *
 * - rate limit: throughput, latency, server CPU and Redis round trips of the rate limiter
 *   against express-rate-limit + rate-limit-redis, rate-limiter-flexible and a one-EVALSHA
 *   floor (`rate-limit-suite.ts`);
 * - response cache: `cacheResponse()` hits on Redis, on Redis behind the in-process tier and in
 *   memory only, against apicache, on an immediate and a 20 ms handler (`cache-suite.ts`);
 * - lock: uncontended acquire+release latency and round trips, and hand-off latency between
 *   contending worker processes, of `createLockManager()` against node-redlock and
 *   redis-semaphore (`lock-suite.ts`);
 * - session: express-session on `UserSessionStore` (with `trackSessions()`) against plain
 *   connect-redis, for an unmodified read and a write of one logged-in session: throughput,
 *   latency, and the Redis commands each request and each store call sends
 *   (`session-suite.ts`).
 *
 * `--only rate-limit`, `--only cache`, `--only lock` or `--only session` (or `BENCH_ONLY`) runs
 * one of them.
 *
 * Starts its own redis-server on a free loopback port, then for each round runs every variant
 * once (rotated order), each in fresh processes pinned to CPU 0 (the HTTP server; the lock
 * workers), with autocannon and Redis pinned to CPU 1, so the code measured has its core to
 * itself.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/harness/redis-server.js";
import { cacheSuite } from "./cache-suite.js";
import { AUTOCANNON, config, ROOT, type Suite } from "./config.js";
import { lockSuite } from "./lock-suite.js";
import { children, killAllNow, pinning, pinRedis, state, stopChild } from "./processes.js";
import { rateLimitSuite } from "./rate-limit-suite.js";
import { sessionSuite } from "./session-suite.js";
import type { RunFailure } from "./stats.js";
import type { BenchEnv, MeasuredRun, SuiteDefinition } from "./suite.js";

/** Round `r`'s order: the entry list rotated by `r`, so entries move through the slots. */
function roundOrder(entries: readonly string[], round: number): string[] {
  const shift = round % entries.length;
  return [...entries.slice(shift), ...entries.slice(0, shift)];
}

/** Runs every round of `suite`; returns its runs and failures (empty when interrupted). */
async function runSuite<R extends MeasuredRun>(
  suite: SuiteDefinition<R>,
  admin: Redis,
  redisUrl: string,
): Promise<{ runs: R[]; failures: RunFailure[] }> {
  const runs: R[] = [];
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
        console.log(
          `[${suite.id} ${round}/${config.rounds}] ${entry.padEnd(width)} ${suite.progress(run)}`,
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

/** Where a benchmark runs: the Redis it uses, the environment and where results go. */
interface RunContext {
  admin: Redis;
  redisUrl: string;
  env: BenchEnv;
  startedAt: Date;
  /** Results file names start with this (the start time). */
  stamp: string;
}

/** Runs `suite`, prints its report and writes it to bench/results/. */
async function runAndReport<R extends MeasuredRun>(
  suite: SuiteDefinition<R>,
  context: RunContext,
): Promise<void> {
  const { runs, failures } = await runSuite(suite, context.admin, context.redisUrl);
  if (state.interrupted) return;
  const report = suite.report(runs, failures, context.env, context.startedAt);
  console.log(report.printed);
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const base = `${context.stamp}-${suite.id}`;
  writeFileSync(join(dir, `${base}.md`), report.markdown);
  writeFileSync(
    join(dir, `${base}.json`),
    `${JSON.stringify({ startedAt: context.startedAt.toISOString(), suite: suite.id, config, env: context.env, ...report.json, failures, runs }, null, 2)}\n`,
  );
  console.log(`Wrote bench/results/${base}.md and .json\n`);
  if (report.failed) process.exitCode = 1;
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

/** Each benchmark (its runs are of different kinds, so each is run by its own call). */
const SUITE_DEFINITIONS: Record<
  Suite,
  {
    suite: Pick<SuiteDefinition<MeasuredRun>, "id" | "entries" | "plan">;
    run(c: RunContext): Promise<void>;
  }
> = {
  "rate-limit": { suite: rateLimitSuite, run: (c) => runAndReport(rateLimitSuite, c) },
  cache: { suite: cacheSuite, run: (c) => runAndReport(cacheSuite, c) },
  lock: { suite: lockSuite, run: (c) => runAndReport(lockSuite, c) },
  session: { suite: sessionSuite, run: (c) => runAndReport(sessionSuite, c) },
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
      pinning: pinning ? "server / lock workers: CPU 0; autocannon + redis-server: CPU 1" : "none",
      loadAverage1m,
      git: gitState(),
    };
    const suites = config.suites.map((id) => SUITE_DEFINITIONS[id]);
    const plans = suites
      .map(
        ({ suite: s }) =>
          `${s.id}: ${config.rounds} round(s) × ${s.entries.length} run(s), ${s.plan}`,
      )
      .join("; ");
    console.log(
      `bench: ${plans}; pinning: ${env.pinning}; ` +
        `node ${env.node}, redis ${env.redis} at ${state.redisServer.url}; load average ${env.loadAverage1m.toFixed(2)}; ` +
        `code: ${env.git}`,
    );

    const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
    const context: RunContext = {
      admin,
      redisUrl: state.redisServer.url,
      env,
      startedAt,
      stamp,
    };
    for (const { run } of suites) {
      await run(context);
      if (state.interrupted) return;
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
