/**
 * `npm run bench`: throughput, latency, server CPU and Redis round trips of the rate limiter
 * against express-rate-limit + rate-limit-redis, rate-limiter-flexible, a one-EVALSHA floor and
 * bare Express. See bench/README.md.
 *
 * Starts its own redis-server on a free loopback port, then for each round runs every variant
 * once (rotated order), each in a fresh server process pinned to CPU 0, loaded by autocannon
 * pinned to CPU 1 (Redis is pinned to CPU 1 too, so the server has its core to itself).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/harness/redis-server.js";
import { AUTOCANNON, config, ROOT } from "./config.js";
import { autocannon, commandStats, readCpu, SCRIPT_COMMANDS, statDelta } from "./measure.js";
import {
  children,
  killAllNow,
  pinning,
  pinRedis,
  startServer,
  state,
  stopChild,
} from "./processes.js";
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
import { DESCRIPTIONS, type Variant } from "./variants.js";

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

async function main(): Promise<void> {
  if (!existsSync(AUTOCANNON))
    throw new Error(`autocannon not installed (${AUTOCANNON}): run npm install`);
  const startedAt = new Date();
  state.redisServer = await startRedisServer();
  const admin = new Redis(state.redisServer.url, { lazyConnect: true });
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
        `node ${env.node}, redis ${env.redis} at ${state.redisServer.url}; load average ${env.loadAverage1m.toFixed(2)}`,
    );

    for (let round = 1; round <= config.rounds && !state.interrupted; round++) {
      const order = roundOrder(config.variants, round - 1);
      for (const [slot, variant] of order.entries()) {
        if (state.interrupted) break;
        if (failed.has(variant)) continue;
        try {
          const run = await runOnce(admin, state.redisServer.url, variant, round, slot);
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
          if (state.interrupted) break;
          const message = error instanceof Error ? error.message : String(error);
          failures.push({ round, variant, error: message });
          failed.add(variant);
          console.log(
            `[round ${round}/${config.rounds}] ${variant}: FAILED, skipped from now on: ${message}`,
          );
        }
      }
    }
    if (state.interrupted) return;

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
