/**
 * The rate-limit benchmark: this library's limiter (on ioredis, and on node-redis: `erk-nr`)
 * against express-rate-limit + rate-limit-redis, rate-limiter-flexible, a one-EVALSHA floor and
 * bare Express, on GET /api of `bench/server.ts`. See bench/README.md.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import { autocannon, httpRun, measureLoad } from "./measure.js";
import { startServer, stopChild } from "./processes.js";
import { reportTexts } from "./report.js";
import {
  commandMix,
  compare,
  comparisonLines,
  httpProgress,
  nodeRedisTargetLine,
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
    return httpRun({ round, variant, order }, await measureLoad(admin, server.port));
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

    const texts = reportTexts({
      title: `Benchmark ${startedAt.toISOString()}`,
      intro: [
        `${config.rounds} round(s), ${config.durationS} s per run after a ${config.warmupS} s warm-up, ` +
          `${config.connections} connections, one key (one client IP). Node ${env.node}, Redis ${env.redis}, ` +
          `${env.cpus} × ${env.cpu}. Pinning: ${env.pinning}. Load average (1 min) at start: ${env.loadAverage1m.toFixed(2)}. Code: ${env.git}.`,
        "Medians over rounds; ×bare is the median of per-round ratios to `bare`.",
      ],
      table,
      ...(config.variants.includes("erk-nr")
        ? { targets: [nodeRedisTargetLine(runs, "erk-nr", "erk")] }
        : {}),
      comparisons: comparisonLines(comparisons),
      problems,
      noProblems: "None: non-2xx responses 0 in every run.",
      printedNoProblems: "Non-2xx responses: 0 in every run.",
      mixes: [{ heading: "Redis calls per request by command (median)", text: commandMix(runs) }],
      variants: [config.variants.map((v) => `- ${v}: ${DESCRIPTIONS[v]}`).join("\n")],
      raw: rawTable(runs),
    });
    return {
      ...texts,
      json: { summaries, comparisons },
      failed: failures.length > 0 || bad.length > 0,
    };
  },
};
