/**
 * `npm run bench`: four benchmarks (see bench/README.md), each a table with server CPU µs per
 * request first, ratios to the reference row of the same round, and the command line that
 * made it, ready to paste into README.md.
 *
 * - rate limit: the rate limiter against express-rate-limit + rate-limit-redis,
 *   rate-limiter-flexible and the one-EVALSHA floor, and the floods (every request over the
 *   limit) of each (`rate-limit-suite.ts`);
 * - response cache: `cacheResponse()` hits on Redis, behind the in-process tier and in memory
 *   only, against apicache's memory and Redis hits, on an immediate and a 20 ms handler
 *   (`cache-suite.ts`);
 * - lock: `requireLock()` around a request against the two-EVALSHA floor
 *   (`lock-http-suite.ts`); then uncontended cycles and contended hand-offs of
 *   `createLockManager()` against node-redlock and redis-semaphore (`lock-suite.ts`);
 * - session: express-session on `UserSessionStore` (with `trackSessions()`) against
 *   connect-redis 8.1, for an unmodified read and a write (`session-suite.ts`).
 *
 * `--only rate-limit`, `--only cache`, `--only lock` or `--only session` (or `BENCH_ONLY`) runs
 * one of them.
 *
 * Compiles the working tree into a private package (`kit-build.ts`; the scenarios load the
 * library from it, as ../shared/peer-bench loads a checkout), starts its own redis-server on a
 * free loopback port, then for each round runs every entry once (rotated order), each in fresh
 * processes pinned to CPU 0, with wrk (autocannon when wrk is missing) and Redis pinned to
 * CPU 1.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/harness/redis-server.js";
import { cacheSuite } from "./cache-suite.js";
import { config, ROOT, type Suite } from "./config.js";
import { buildKit, removeKit } from "./kit-build.js";
import { LOADGEN, loadgenLine } from "./loadgen.js";
import { lockHttpSuite } from "./lock-http-suite.js";
import { lockSuite } from "./lock-suite.js";
import { children, killAllNow, pinning, pinRedis, state, stopChild } from "./processes.js";
import { rateLimitSuite } from "./rate-limit-suite.js";
import { sessionSuite } from "./session-suite.js";
import { MAX_OTHER_LOAD, type RunFailure } from "./stats.js";
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
        let run = await suite.runOnce(admin, redisUrl, entry, round, slot);
        for (let retry = 1; retry <= config.retries && !state.interrupted; retry++) {
          const noise = suite.noise?.(run);
          if (noise === undefined || noise <= MAX_OTHER_LOAD) break;
          console.log(
            `[${suite.id} ${round}/${config.rounds}] ${entry.padEnd(width)} noisy (other processes used ${Math.round(noise * 100)} % of a core): run again`,
          );
          run = {
            ...(await suite.runOnce(admin, redisUrl, entry, round, slot)),
            retriedNoisy: retry,
          };
        }
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

/**
 * The commit checked out and the tracked files changed since (the code measured): the commit
 * with a count for the tables, the files for the results file.
 */
function gitState(): { git: string; changedFiles: string[] } {
  const git = (...args: string[]) =>
    spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trimEnd() ?? "";
  const commit = git("rev-parse", "--short", "HEAD") || "unknown";
  const changedFiles = git("status", "--porcelain", "--untracked-files=no")
    .split("\n")
    .map((line) => line.slice(3))
    .filter((path) => path !== "");
  return {
    git:
      changedFiles.length === 0
        ? commit
        : `${commit} + uncommitted changes to ${changedFiles.length} file(s)`,
    changedFiles,
  };
}

/** Each benchmark's suites, run in this order (its runs are of different kinds: one call each). */
const SUITE_DEFINITIONS: Record<
  Suite,
  {
    suites: Pick<SuiteDefinition<MeasuredRun>, "id" | "entries" | "plan">[];
    run(c: RunContext): Promise<void>;
  }
> = {
  "rate-limit": { suites: [rateLimitSuite], run: (c) => runAndReport(rateLimitSuite, c) },
  cache: { suites: [cacheSuite], run: (c) => runAndReport(cacheSuite, c) },
  lock: {
    suites: [lockHttpSuite, lockSuite].filter((s) => s.entries.length > 0),
    run: async (c) => {
      if (lockHttpSuite.entries.length > 0) await runAndReport(lockHttpSuite, c);
      if (state.interrupted) return;
      if (lockSuite.entries.length > 0) await runAndReport(lockSuite, c);
    },
  },
  session: { suites: [sessionSuite], run: (c) => runAndReport(sessionSuite, c) },
};

async function main(): Promise<void> {
  if (config.suites.length === 0)
    throw new Error("nothing to run: --only / BENCH_ONLY and BENCH_VARIANTS select no variant");
  if (LOADGEN.note !== undefined) console.log(`bench: load generator: ${LOADGEN.note}`);
  const kit = buildKit();
  process.on("exit", () => removeKit(kit));
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
      pinning: pinning
        ? `server / lock workers: CPU 0; ${LOADGEN.tool} + redis-server: CPU 1`
        : "none (taskset missing, fewer than 2 CPUs, or BENCH_PIN=0)",
      loadAverage1m,
      ...gitState(),
    };
    const suites = config.suites.map((id) => SUITE_DEFINITIONS[id]);
    const plans = suites
      .flatMap(({ suites: parts }) => parts)
      .map((s) => `${s.id}: ${config.rounds} round(s) × ${s.entries.length} run(s), ${s.plan}`)
      .join("; ");
    console.log(
      `bench: \`${config.commandLine}\`; ${plans}; load: ${loadgenLine()}; pinning: ${env.pinning}; ` +
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
