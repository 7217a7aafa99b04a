/**
 * The lock benchmark's HTTP part: `requireLock()` around GET /api, uncontended (a new resource
 * per request: acquire before the handler, release when the response is sent), against the
 * two-EVALSHA floor and bare Express, the shape of ../shared/peer-bench's `p_lock` and
 * `f2_phys_two`. The worker part (hand-offs against node-redlock) is `lock-suite.ts`.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import { type Column, mainTable, pasteBlock, rawTable } from "./http-report.js";
import { runHttpEntry } from "./http-run.js";
import { MAX_ROUND_TRIPS } from "./lock-report.js";
import { isLockHttpVariant, LOCK_HTTP_DESCRIPTIONS, LOCK_HTTP_SCENARIOS } from "./lock-variants.js";
import { reportTexts } from "./report.js";
import {
  commandMix,
  comparisonLines,
  fmt,
  httpNoise,
  httpProgress,
  nodeRedisTargetLine,
  outsideLoadLine,
  type RunResult,
  runProblems,
  summarize,
  type VariantSummary,
} from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<RunResult> {
  if (!isLockHttpVariant(entry)) throw new Error(`unknown lock HTTP variant ${entry}`);
  return runHttpEntry(
    admin,
    redisUrl,
    { round, variant: entry, order },
    {
      suite: "lock-http",
      variant: entry,
      path: "/api",
    },
  );
}

const NAME: Column<VariantSummary> = {
  header: "scenario",
  text: true,
  cell: (s) =>
    `${isLockHttpVariant(s.variant) ? LOCK_HTTP_SCENARIOS[s.variant].label : s.variant} (\`${s.variant}\`)`,
};

/** Round trips per request of this library's rows against the target. */
function roundTripTargets(summaries: readonly VariantSummary[]): string[] {
  return summaries
    .filter((s) => s.variant.startsWith("erk-"))
    .map((s) => {
      const trips = s.median.roundTripsPerReq;
      return (
        `- round trips per request, ${s.variant} (target ≤ ${MAX_ROUND_TRIPS}): ${fmt(trips, 2)} → ` +
        (trips <= MAX_ROUND_TRIPS + 0.005 ? "**met**" : "**NOT met**")
      );
    });
}

export const lockHttpSuite: SuiteDefinition = {
  id: "lock-http",
  entries: config.lockHttpVariants,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections`,
  runOnce,
  noise: httpNoise,
  progress: (run) => httpProgress(run, `${fmt(run.roundTripsPerReq, 2)} round trips/req`),
  report(runs, failures, env, startedAt) {
    const summaries = summarize(runs, config.lockHttpVariants, () => "bare");
    const bad = runs.filter((r) => r.non2xx + r.errors + r.timeouts > 0 || r.requests === 0);
    const problems = [
      ...bad.map(
        (r) =>
          `- ${r.variant} round ${r.round}: non-2xx ${r.non2xx}, socket errors ${r.errors}, timeouts ${r.timeouts} of ${r.requests} (must be 0)`,
      ),
      ...runProblems(runs, failures),
    ];
    const table = mainTable(summaries, [NAME], "bare", [
      { header: "round trips/req", cell: (s) => fmt(s.median.roundTripsPerReq, 2) },
    ]);
    const texts = reportTexts({
      heading: "Locks around a request (paste into README.md)",
      title: `Lock benchmark, HTTP part ${startedAt.toISOString()}`,
      intro: [],
      table: pasteBlock(
        env,
        startedAt,
        "GET /api → 1024-byte JSON via res.json(), a new lock resource per request (uncontended acquire before the handler, release when the response is sent); reference row: bare Express",
        table,
      ),
      targets: [
        ...roundTripTargets(summaries),
        ...(config.lockHttpVariants.includes("erk-lock-nr")
          ? [nodeRedisTargetLine(runs, "erk-lock-nr", "erk-lock")]
          : []),
      ],
      comparisons: comparisonLines(runs, [
        ["erk-lock", "floor2"],
        ["erk-lock-nr", "erk-lock"],
      ]),
      problems,
      noProblems: "None: every response 2xx, no socket errors.",
      noise: outsideLoadLine(runs),
      mixes: [
        {
          heading: "Redis calls per request by command (median, INFO commandstats)",
          text: commandMix(runs, config.lockHttpVariants),
        },
      ],
      variants: [
        config.lockHttpVariants
          .map(
            (v) =>
              `- \`${v}\` (peer-bench \`${LOCK_HTTP_SCENARIOS[v].peerBench}\`): ${LOCK_HTTP_DESCRIPTIONS[v]}`,
          )
          .join("\n"),
      ],
      raw: rawTable(runs),
    });
    return { ...texts, json: { summaries }, failed: failures.length > 0 || bad.length > 0 };
  },
};
