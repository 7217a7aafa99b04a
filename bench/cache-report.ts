/**
 * The response-cache benchmark's report: the main table (per handler, ratios to bare on the
 * same handler), the issue's targets, comparisons with apicache, problems, the results file.
 */
import {
  CACHE_DESCRIPTIONS,
  CACHE_SCENARIOS,
  type CacheHandler,
  type CacheVariant,
  entryName,
  HANDLER_DELAY_MS,
  HANDLER_PATHS,
  MAX_HANDLER_RUNS,
  parseEntry,
} from "./cache-variants.js";
import { config } from "./config.js";
import { type Column, mainTable, pasteBlock, rawTable } from "./http-report.js";
import { reportTexts } from "./report.js";
import {
  commandMix,
  comparisonLines,
  fmt,
  fmtInt,
  nodeRedisTargetLine,
  outsideLoadLine,
  type RunFailure,
  type RunResult,
  runProblems,
  summarize,
  type VariantSummary,
} from "./stats.js";
import type { BenchEnv, SuiteReport } from "./suite.js";

/** The entries, variant-major: `bare/0ms`, `bare/20ms`, `apicache/0ms`, ... */
export const CACHE_ENTRIES = config.cacheVariants.flatMap((v) =>
  config.cacheHandlers.map((h) => entryName(v, h)),
);

/** Whether a run of `entry` ran the handler more than a handful of times (bare always does). */
export function tooManyRuns(run: RunResult): boolean {
  return parseEntry(run.variant).variant !== "bare" && (run.handlerRuns ?? 0) > MAX_HANDLER_RUNS;
}

function referenceOf(entry: string): string {
  return entryName("bare", parseEntry(entry).handler);
}

/** The comparisons the report calls out, on each handler. */
function comparisonPairs(): [string, string][] {
  const pairs: [CacheVariant, CacheVariant][] = [
    ["erk-redis", "apicache-redis"],
    ["erk-2tier", "apicache"],
    ["erk-memory", "apicache"],
    ["erk-redis-nr", "erk-redis"],
    ["erk-2tier", "erk-redis"],
  ];
  return config.cacheHandlers.flatMap((h) =>
    pairs.map(([a, b]): [string, string] => [entryName(a, h), entryName(b, h)]),
  );
}

/**
 * The issue's targets (hits at least bare's req/s on the 20 ms handler; one command per Redis
 * hit, none per memory-tier hit) and the node-redis bar, against the measured medians.
 */
function targetLines(summaries: readonly VariantSummary[], runs: readonly RunResult[]): string[] {
  const find = (v: CacheVariant, h: CacheHandler) =>
    summaries.find((s) => s.variant === entryName(v, h));
  const lines: string[] = [];
  const throughput = (variant: CacheVariant, min: number, what: string) => {
    const s = find(variant, "20ms");
    if (s === undefined) return `- ${what}: not measured`;
    const ratio = s.ratio.reqPerSec;
    const verdict = Number.isFinite(ratio) ? (ratio >= min ? "**met**" : "**NOT met**") : "n/a";
    return `- ${what} (target ≥ ${min.toFixed(2)}× bare req/s): ×${fmt(ratio, 2)} (${fmtInt(s.median.reqPerSec)} req/s) → ${verdict}`;
  };
  lines.push(throughput("erk-redis", 1, "Redis hit, 20 ms handler"));
  lines.push(throughput("erk-2tier", 1.3, "memory-tier hit, 20 ms handler"));
  const bare20 = find("bare", "20ms");
  if (bare20 !== undefined) {
    const delay = HANDLER_DELAY_MS["20ms"];
    lines.push(
      `- context: bare on the 20 ms handler is bound by the delay, at most ${config.connections} connections / ${delay} ms = ` +
        `${fmtInt(config.connections / (delay / 1000))} req/s (measured ${fmtInt(bare20.median.reqPerSec)}), so any working cache clears both 20 ms targets; ` +
        "the 0 ms rows (GET /api, where bare does no waiting) show what a hit costs against building the response.",
    );
  }
  const trips = (variant: CacheVariant, target: number, what: string) => {
    const rows = config.cacheHandlers
      .map((h) => find(variant, h))
      .filter((s): s is VariantSummary => s !== undefined);
    if (rows.length === 0) return `- ${what}: not measured`;
    const parts = rows.map(
      (s) =>
        `${parseEntry(s.variant).handler}: ${fmt(s.median.roundTripsPerReq, 3)} round trips/req, ` +
        `${fmt(s.median.scriptCallsPerReq, 3)} script calls/req, ${fmt(s.median.redisCmdsPerReq, 3)} commandstats calls/req`,
    );
    const met = rows.every((s) => Math.abs(s.median.roundTripsPerReq - target) < 0.005);
    return `- ${what} (target exactly ${target} Redis command sent per hit): ${parts.join("; ")} → ${met ? "**met**" : "**NOT met**"}`;
  };
  lines.push(trips("erk-redis", 1, "Redis hit"));
  lines.push(trips("erk-2tier", 0, "memory-tier hit"));
  if (config.cacheVariants.includes("erk-redis-nr")) {
    lines.push(trips("erk-redis-nr", 1, "Redis hit on node-redis"));
    for (const h of config.cacheHandlers)
      lines.push(
        nodeRedisTargetLine(runs, entryName("erk-redis-nr", h), entryName("erk-redis", h)),
      );
  }
  return lines;
}

function problemLines(runs: readonly RunResult[], failures: readonly RunFailure[]) {
  const bad = runs.filter((r) => r.non2xx + r.errors + r.timeouts > 0 || r.requests === 0);
  const missed = runs.filter(tooManyRuns);
  const cacheErrors = runs.filter((r) => (r.cacheErrors ?? 0) > 0);
  const lines = [
    ...bad.map(
      (r) =>
        `- ${r.variant} round ${r.round}: non-2xx ${r.non2xx}, socket errors ${r.errors}, timeouts ${r.timeouts} of ${r.requests} (must be 0)`,
    ),
    ...missed.map(
      (r) =>
        `- ${r.variant} round ${r.round}: the handler ran ${r.handlerRuns} times (at most ${MAX_HANDLER_RUNS}): not measuring hits`,
    ),
    ...cacheErrors.map(
      (r) =>
        `- ${r.variant} round ${r.round}: ${r.cacheErrors} Redis failures counted by cacheResponse stats()`,
    ),
    ...runProblems(runs, failures),
  ];
  const failing =
    failures.length > 0 || bad.length > 0 || missed.length > 0 || cacheErrors.length > 0;
  return { lines, failing };
}

/** The whole report of the response-cache benchmark. */
export function cacheReport(
  runs: readonly RunResult[],
  failures: readonly RunFailure[],
  env: BenchEnv,
  startedAt: Date,
): SuiteReport {
  const summaries = summarize(runs, CACHE_ENTRIES, referenceOf);
  const names: Column<VariantSummary>[] = [
    {
      header: "scenario",
      text: true,
      cell: (s) => {
        const { variant } = parseEntry(s.variant);
        return `${CACHE_SCENARIOS[variant].label} (\`${variant}\`)`;
      },
    },
    {
      header: "handler",
      text: true,
      cell: (s) => {
        const { handler } = parseEntry(s.variant);
        const delay = HANDLER_DELAY_MS[handler];
        return `GET ${HANDLER_PATHS[handler]}${delay > 0 ? ` (${delay} ms)` : ""}`;
      },
    },
  ];
  const handlerRuns: Column<VariantSummary> = {
    header: "handler runs (max)",
    cell: (s) =>
      parseEntry(s.variant).variant === "bare"
        ? "every request"
        : String(
            Math.max(...runs.filter((r) => r.variant === s.variant).map((r) => r.handlerRuns ?? 0)),
          ),
  };
  const table = mainTable(summaries, names, "bare", [
    { header: "round trips/req", cell: (s) => fmt(s.median.roundTripsPerReq, 2) },
    handlerRuns,
  ]);
  const problems = problemLines(runs, failures);
  const texts = reportTexts({
    heading: "Response cache (paste into README.md)",
    title: `Response-cache benchmark ${startedAt.toISOString()}`,
    intro: [],
    table: pasteBlock(
      env,
      startedAt,
      "GET /api → 1024-byte JSON via res.json() (and GET /slow, the same after a 20 ms timer), one URL, every measured request a hit " +
        "(one warming request and a verified hit first); reference row: bare Express on the same handler",
      table,
    ),
    targets: targetLines(summaries, runs),
    comparisons: comparisonLines(runs, comparisonPairs()),
    problems: problems.lines,
    noProblems: `None: non-2xx responses 0, and every caching run ran its handler at most ${MAX_HANDLER_RUNS} times.`,
    noise: outsideLoadLine(runs),
    mixes: [
      {
        heading: "Redis calls per request by command (median, INFO commandstats)",
        text: commandMix(runs, CACHE_ENTRIES),
      },
    ],
    variants: [
      config.cacheVariants
        .map(
          (v) =>
            `- \`${v}\`${CACHE_SCENARIOS[v].peerBench ? ` (peer-bench \`${CACHE_SCENARIOS[v].peerBench}\`)` : ""}: ${CACHE_DESCRIPTIONS[v]}`,
        )
        .join("\n"),
      "Handlers: `0ms` is GET /api, which answers the 1024-byte body at once; `20ms` is GET /slow, which awaits a 20 ms timer first.",
    ],
    raw: rawTable(runs, [
      {
        header: "handler runs (run / measured)",
        cell: (r) => `${r.handlerRuns ?? "n/a"} / ${r.handlerRunsMeasured ?? "n/a"}`,
      },
      { header: "cache errors", cell: (r) => String(r.cacheErrors ?? "n/a") },
    ]),
  });
  return { ...texts, json: { summaries }, failed: problems.failing };
}
