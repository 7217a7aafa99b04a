/**
 * The rate-limit benchmark: this library's limiter (one policy, no headers, two policies,
 * auto-pipelined, on node-redis) against express-rate-limit + rate-limit-redis,
 * rate-limiter-flexible, the one-EVALSHA floor and bare Express on GET /api; and the floods,
 * where every request is over the limit: ours (rejected in process), express-rate-limit's
 * MemoryStore, rate-limit-redis, rate-limiter-flexible with `inMemoryBlockOnConsumed`. See
 * bench/README.md.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import { type Column, mainTable, pasteBlock, rawTable } from "./http-report.js";
import { runHttpEntry } from "./http-run.js";
import { reportTexts } from "./report.js";
import {
  commandMix,
  comparisonLines,
  fmt,
  httpNoise,
  httpProgress,
  medianRatio,
  nodeRedisTargetLine,
  outsideLoadLine,
  percent,
  type RunResult,
  runProblems,
  summarize,
  type VariantSummary,
} from "./stats.js";
import type { SuiteDefinition } from "./suite.js";
import {
  DESCRIPTIONS,
  FLOODS,
  isVariant,
  RATE_LIMIT_SCENARIOS,
  REFERENCE,
  type Variant,
} from "./variants.js";

/** The comparisons the report calls out: [numerator, denominator]. */
const COMPARISONS: readonly [Variant, Variant][] = [
  ["erk", "erl-rlr"],
  ["erk", "rlf"],
  ["erk", "floor"],
  ["erk-nh", "floor"],
  ["erk-ap", "floor-ap"],
  ["erk-2p", "erk"],
  ["erk-nr", "erk"],
  ["flood-erk", "flood-erl-memory"],
  ["flood-erk", "flood-erl-rlr"],
  ["flood-erk", "flood-rlf-block"],
];

function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<RunResult> {
  if (!isVariant(entry)) throw new Error(`unknown rate-limit variant ${entry}`);
  return runHttpEntry(
    admin,
    redisUrl,
    { round, variant: entry, order },
    {
      suite: "rate-limit",
      variant: entry,
      path: "/api",
    },
  );
}

/** Whether a run's responses are what its variant must answer: all 2xx, or all 429 (floods). */
function wrongAnswers(run: RunResult): boolean {
  const expected = FLOODS.has(run.variant as Variant) ? run.requests : 0;
  return run.non2xx !== expected || run.errors + run.timeouts > 0 || run.requests === 0;
}

function label(entry: string): string {
  return isVariant(entry) ? RATE_LIMIT_SCENARIOS[entry].label : entry;
}

const NAME: Column<VariantSummary> = {
  header: "scenario",
  text: true,
  cell: (s) => `${label(s.variant)} (\`${s.variant}\`)`,
};

function rejectedShare(runs: readonly RunResult[]): Column<VariantSummary> {
  return {
    header: "rejected (429)",
    cell: (s) => {
      const mine = runs.filter((r) => r.variant === s.variant);
      const requests = mine.reduce((sum, r) => sum + r.requests, 0);
      return percent(
        requests > 0 ? mine.reduce((sum, r) => sum + r.non2xx, 0) / requests : Number.NaN,
      );
    },
  };
}

/** The flood target: our flood at most express-rate-limit MemoryStore's flood's CPU per request. */
function floodTarget(runs: readonly RunResult[]): string {
  const cpu = medianRatio(runs, "flood-erk", "flood-erl-memory", "cpuUsPerReq");
  if (!Number.isFinite(cpu))
    return "- flood, rateLimit() ≤ express-rate-limit MemoryStore (CPU µs/req): not measured";
  return `- flood, rateLimit() ≤ express-rate-limit MemoryStore (CPU µs/req): ×${fmt(cpu, 2)} → ${cpu <= 1 ? "**met**" : "**NOT met**"}`;
}

export const rateLimitSuite: SuiteDefinition = {
  id: "rate-limit",
  entries: config.variants,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections`,
  runOnce,
  noise: httpNoise,
  progress: (run) =>
    httpProgress(
      run,
      wrongAnswers(run) && FLOODS.has(run.variant as Variant)
        ? `!! a flood must answer 429 to every request (${run.non2xx} of ${run.requests})`
        : "",
      FLOODS.has(run.variant as Variant),
    ),
  report(runs, failures, env, startedAt) {
    const summaries = summarize(runs, config.variants, () => REFERENCE);
    const wrong = runs.filter(wrongAnswers);
    const problems = [
      ...wrong.map(
        (r) =>
          `- ${r.variant} round ${r.round}: ${r.non2xx} of ${r.requests} responses ≥ 400, ${r.errors} socket errors, ${r.timeouts} timeouts ` +
          `(must be ${FLOODS.has(r.variant as Variant) ? "all 429" : "all 2xx"}, no errors)`,
      ),
      ...runProblems(runs, failures),
    ];
    const table = mainTable(summaries, [NAME], "bare", [
      rejectedShare(runs),
      { header: "round trips/req", cell: (s) => fmt(s.median.roundTripsPerReq, 2) },
    ]);
    const texts = reportTexts({
      heading: "Rate limit (paste into README.md)",
      title: `Rate-limit benchmark ${startedAt.toISOString()}`,
      intro: [],
      table: pasteBlock(
        env,
        startedAt,
        "GET /api → 1024-byte JSON via res.json(), every request from 127.0.0.1 (one limiter key); limits 1e9 (nothing rejected) except the floods (1 per minute: every measured request a 429); reference row: bare Express",
        table,
      ),
      targets: [
        floodTarget(runs),
        ...(config.variants.includes("erk-nr") ? [nodeRedisTargetLine(runs, "erk-nr", "erk")] : []),
      ],
      comparisons: comparisonLines(runs, COMPARISONS),
      problems,
      noProblems:
        "None: every non-flood response 2xx, every flood response a 429, no socket errors.",
      noise: outsideLoadLine(runs),
      mixes: [
        {
          heading: "Redis calls per request by command (median, INFO commandstats)",
          text: commandMix(runs, config.variants),
        },
      ],
      variants: [
        config.variants
          .map(
            (v) =>
              `- \`${v}\` (peer-bench \`${RATE_LIMIT_SCENARIOS[v].peerBench}\`): ${DESCRIPTIONS[v]}`,
          )
          .join("\n"),
      ],
      raw: rawTable(runs),
    });
    return {
      ...texts,
      json: { summaries },
      failed: failures.length > 0 || wrong.length > 0,
    };
  },
};
