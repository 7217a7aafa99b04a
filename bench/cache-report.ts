import {
  type CacheHandler,
  type CacheVariant,
  entryName,
  HANDLER_DELAY_MS,
  parseEntry,
} from "./cache-variants.js";
import { config } from "./config.js";
import {
  fmt,
  fmtInt,
  nodeRedisTargetLine,
  percent,
  type RunResult,
  type VariantSummary,
} from "./stats.js";

export function summaryTable(
  summaries: readonly VariantSummary[],
  runs: readonly RunResult[],
): string {
  const lines = [
    "| variant | handler | req/s | ×bare | p99 ms | ×bare | CPU µs/req | ×bare | Redis cmds/req | script calls/req | round trips/req | handler runs (max) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    const { variant, handler } = parseEntry(s.variant);
    const m = s.median;
    const r = s.ratioToBare;
    const mine = runs.filter((run) => run.variant === s.variant);
    const handlerRuns =
      variant === "bare"
        ? "every request"
        : String(Math.max(...mine.map((x) => x.handlerRuns ?? 0)));
    lines.push(
      `| ${variant} | ${handler} | ${fmtInt(m.reqPerSec)} | ${fmt(r.reqPerSec, 2)} | ${fmt(m.p99Ms, 1)} | ${fmt(r.p99Ms, 2)} | ` +
        `${fmt(m.cpuUsPerReq, 1)} | ${fmt(r.cpuUsPerReq, 2)} | ${fmt(m.redisCmdsPerReq, 2)} | ${fmt(m.scriptCallsPerReq, 2)} | ` +
        `${fmt(m.roundTripsPerReq, 2)} | ${handlerRuns} |`,
    );
  }
  return lines.join("\n");
}

export function rawTable(runs: readonly RunResult[]): string {
  const lines = [
    "| round | order | variant/handler | req/s | p99 ms | CPU µs/req | Redis cmds/req | round trips/req | served | handler runs (run / measured) | non-2xx | errors | cache errors | other load on CPU 0 | ended |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.order} | ${r.variant} | ${fmtInt(r.reqPerSec)} | ${fmt(r.p99Ms, 0)} | ${fmt(r.cpuUsPerReq, 1)} | ` +
        `${fmt(r.redisCmdsPerReq, 2)} | ${fmt(r.roundTripsPerReq ?? Number.NaN, 2)} | ${r.served} | ` +
        `${r.handlerRuns ?? "n/a"} / ${r.handlerRunsMeasured ?? "n/a"} | ${r.non2xx} | ${r.errors + r.timeouts} | ${r.cacheErrors ?? "n/a"} | ` +
        `${percent(r.otherLoadOnServerCore)} | ${r.at?.slice(11, 19) ?? ""} |`,
    );
  }
  return lines.join("\n");
}

/** The comparisons the report calls out, on each handler. */
export function comparisonPairs(): [string, string][] {
  const has = new Set(config.cacheVariants);
  const pairs: [CacheVariant, CacheVariant][] = [
    ["erk-redis", "apicache"],
    ["erk-redis-nr", "erk-redis"],
    ["erk-2tier", "apicache"],
    ["erk-memory", "apicache"],
    ["erk-2tier", "erk-redis"],
    ["erk-memory", "erk-2tier"],
  ];
  return config.cacheHandlers.flatMap((h) =>
    pairs
      .filter(([a, b]) => has.has(a) && has.has(b))
      .map(([a, b]): [string, string] => [entryName(a, h), entryName(b, h)]),
  );
}

/**
 * The targets, the Redis round trips of a hit, and the node-redis bar (a node-redis hit
 * against an ioredis hit), against the measured medians.
 */
export function targetLines(
  summaries: readonly VariantSummary[],
  runs: readonly RunResult[],
): string[] {
  const find = (entry: string) => summaries.find((s) => s.variant === entry);
  const lines: string[] = [];
  const throughput = (variant: CacheVariant, handler: CacheHandler, min: number, what: string) => {
    const s = find(entryName(variant, handler));
    if (s === undefined) return `- ${what}: not measured`;
    const ratio = s.ratioToBare.reqPerSec;
    const verdict = Number.isFinite(ratio) ? (ratio >= min ? "**met**" : "**NOT met**") : "n/a";
    return `- ${what} (target ≥ ${min.toFixed(2)}× bare req/s): ×${fmt(ratio, 2)} (${fmtInt(s.median.reqPerSec)} req/s) → ${verdict}`;
  };
  lines.push(throughput("erk-redis", "20ms", 1, "Redis hit, 20 ms handler"));
  lines.push(throughput("erk-2tier", "20ms", 1.3, "memory-tier hit, 20 ms handler"));
  const bare20 = find(entryName("bare", "20ms"));
  if (bare20 !== undefined) {
    const delay = HANDLER_DELAY_MS["20ms"];
    const bound = config.connections / (delay / 1000);
    lines.push(
      `- context: bare on the 20 ms handler is bound by the delay, at most ${config.connections} connections / ${delay} ms = ` +
        `${fmtInt(bound)} req/s (measured ${fmtInt(bare20.median.reqPerSec)}), so any working cache clears both 20 ms targets; ` +
        "the 0 ms rows, where bare does no waiting, show what a hit costs against building the response:",
    );
    lines.push(
      `  Redis hit ×${fmt(find(entryName("erk-redis", "0ms"))?.ratioToBare.reqPerSec ?? Number.NaN, 2)} bare req/s, ` +
        `memory-tier hit ×${fmt(find(entryName("erk-2tier", "0ms"))?.ratioToBare.reqPerSec ?? Number.NaN, 2)}, ` +
        `memory-only hit ×${fmt(find(entryName("erk-memory", "0ms"))?.ratioToBare.reqPerSec ?? Number.NaN, 2)}, ` +
        `apicache hit ×${fmt(find(entryName("apicache", "0ms"))?.ratioToBare.reqPerSec ?? Number.NaN, 2)}.`,
    );
  }
  const trips = (variant: CacheVariant, target: number, what: string) => {
    const rows = config.cacheHandlers
      .map((h) => find(entryName(variant, h)))
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
