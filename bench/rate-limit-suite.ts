/**
 * The rate-limit benchmark: this library's limiter against express-rate-limit +
 * rate-limit-redis, rate-limiter-flexible, a one-EVALSHA floor and bare Express, on GET /api of
 * `bench/server.ts`. See bench/README.md.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import { autocannon, commandStats, readCpu, redisCounts } from "./measure.js";
import { startServer, stopChild } from "./processes.js";
import {
  commandMix,
  compare,
  comparisonLines,
  httpProgress,
  type RunResult,
  rawTable,
  summarize,
  summaryTable,
} from "./stats.js";
import type { SuiteDefinition } from "./suite.js";
import { DESCRIPTIONS, isVariant, type Variant } from "./variants.js";

async function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<RunResult> {
  if (!isVariant(entry)) throw new Error(`unknown rate-limit variant ${entry}`);
  const variant: Variant = entry;
  await admin.flushall();
  const server = await startServer(variant, "server.ts", [variant, redisUrl]);
  try {
    if (config.warmupS > 0) await autocannon(server.port, config.warmupS);
    const cpuBefore = await readCpu(server.port);
    const statsBefore = await commandStats(admin);
    const load = await autocannon(server.port, config.durationS);
    const cpuAfter = await readCpu(server.port);
    const statsAfter = await commandStats(admin);

    const served = cpuAfter.served - cpuBefore.served;
    const perReq = (n: number) => (served > 0 ? n / served : Number.NaN);
    const redis = redisCounts(statsBefore, statsAfter, perReq);
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
      ...redis,
    };
  } finally {
    await stopChild(server.child);
  }
}

export const rateLimitSuite: SuiteDefinition = {
  id: "rate-limit",
  entries: config.variants,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections`,
  runOnce,
  progress: (run) => httpProgress(run),
  report(runs, failures, env, startedAt) {
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

    const printed = [
      `\n${table}\n\nKey comparisons (median of per-round ratios):\n${comparisonLines(comparisons)}\n`,
      problems.length > 0
        ? `Problems:\n${problems.join("\n")}\n`
        : "Non-2xx responses: 0 in every run.\n",
    ].join("\n");
    const markdown = [
      `# Benchmark ${startedAt.toISOString()}`,
      "",
      `${config.rounds} round(s), ${config.durationS} s per run after a ${config.warmupS} s warm-up, ` +
        `${config.connections} connections, one key (one client IP). Node ${env.node}, Redis ${env.redis}, ` +
        `${env.cpus} × ${env.cpu}. Pinning: ${env.pinning}. Load average (1 min) at start: ${env.loadAverage1m.toFixed(2)}. Code: ${env.git}.`,
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
    return {
      printed,
      markdown,
      json: { summaries, comparisons },
      failed: failures.length > 0 || bad.length > 0,
    };
  },
};
