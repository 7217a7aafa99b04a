/**
 * Aggregation and formatting of the benchmark's per-run measurements.
 */
import { VARIANTS } from "./variants.js";

/**
 * One measured run of one variant (cache benchmark: one variant on one handler; session
 * benchmark: one variant on one scenario) in one round.
 */
export interface RunResult {
  round: number;
  /** The variant, or `variant/handler` (cache), or `variant/scenario` (session). */
  variant: string;
  /** Position of the variant within its round (0 = first). */
  order: number;
  /** autocannon's mean of per-second request counts. */
  reqPerSec: number;
  /** autocannon's p99 latency, in ms (1 ms resolution). */
  p99Ms: number;
  /** Responses autocannon counted. */
  requests: number;
  /** Requests the server received on the measured path in the window (the divisor of per-request metrics). */
  served: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Server process user + system CPU time per request, in µs. */
  cpuUsPerReq: number;
  /** Redis commands per request, script calls and the commands they ran included. */
  redisCmdsPerReq: number;
  /** EVAL/EVALSHA (and _RO, FCALL) calls per request. */
  scriptCallsPerReq: number;
  /** Redis calls per request by command name (only commands seen in the window). */
  commands: Record<string, number>;
  /**
   * Cache and session benchmarks: commands the server's Redis client sent per request (round
   * trips; INFO commandstats also counts the commands scripts run). Absent in the rate-limit
   * benchmark.
   */
  roundTripsPerReq?: number;
  /** Cache benchmark: handler runs over the whole run (warming and warm-up included). */
  handlerRuns?: number;
  /** Cache benchmark: handler runs within the measured window. */
  handlerRunsMeasured?: number;
  /** Cache benchmark, this library's variants: Redis failures counted by `stats().errors`. */
  cacheErrors?: number;
  /** Cache and session benchmarks: the first lines the server wrote to stderr, if any. */
  serverLog?: string;
  /**
   * Cache and session benchmarks, when pinned: the share of the server's core (CPU 0) that other processes
   * (and interrupts) used during the measured window, 0-1. High values mean outside load.
   */
  otherLoadOnServerCore?: number;
  /** Cache and session benchmarks: when the run ended. */
  at?: string;
}

/** A run that could not be measured (server did not start, load generator failed, ...). */
export interface RunFailure {
  round: number;
  variant: string;
  error: string;
}

export const METRICS = [
  "reqPerSec",
  "p99Ms",
  "cpuUsPerReq",
  "redisCmdsPerReq",
  "scriptCallsPerReq",
  "roundTripsPerReq",
] as const;
export type Metric = (typeof METRICS)[number];

/** A run's value of `metric` (NaN when the run did not measure it). */
function metricValue(run: RunResult, metric: Metric): number {
  return run[metric] ?? Number.NaN;
}

/** Median of a non-empty list (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/**
 * The `q` quantile (0-1) of `values` by nearest rank: the smallest value with at least
 * `q` × n values at or below it (p99 of 2000 values: the 1980th smallest). NaN when empty.
 */
export function quantile(values: readonly number[], q: number): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const rank = Math.min(finite.length, Math.max(1, Math.ceil(q * finite.length)));
  return finite[rank - 1]!;
}

/** Per variant: the median of each metric, and the median of its per-round ratio to `bare`. */
export interface VariantSummary {
  variant: string;
  rounds: number;
  median: Record<Metric, number>;
  ratioToBare: Record<Metric, number>;
  non2xx: number;
  errors: number;
  timeouts: number;
}

function byRound(runs: readonly RunResult[], variant: string): Map<number, RunResult> {
  return new Map(runs.filter((r) => r.variant === variant).map((r) => [r.round, r]));
}

/** Median over rounds of `a.metric / b.metric`, counting only rounds where both ran. */
export function medianRatio(
  runs: readonly RunResult[],
  a: string,
  b: string,
  metric: Metric,
): number {
  const left = byRound(runs, a);
  const right = byRound(runs, b);
  const ratios: number[] = [];
  for (const [round, run] of left) {
    const other = right.get(round);
    const denominator = other === undefined ? Number.NaN : metricValue(other, metric);
    if (denominator !== 0) ratios.push(metricValue(run, metric) / denominator);
  }
  return median(ratios);
}

/**
 * Summaries in `order` (the variants that ran); ratios are to `baselineOf(variant)` (default:
 * `bare`).
 */
export function summarize(
  runs: readonly RunResult[],
  order: readonly string[] = VARIANTS,
  baselineOf: (variant: string) => string = () => "bare",
): VariantSummary[] {
  const summaries: VariantSummary[] = [];
  for (const variant of order) {
    const mine = runs.filter((r) => r.variant === variant);
    if (mine.length === 0) continue;
    const med = {} as Record<Metric, number>;
    const ratio = {} as Record<Metric, number>;
    for (const metric of METRICS) {
      med[metric] = median(mine.map((r) => metricValue(r, metric)));
      ratio[metric] = medianRatio(runs, variant, baselineOf(variant), metric);
    }
    summaries.push({
      variant,
      rounds: mine.length,
      median: med,
      ratioToBare: ratio,
      non2xx: mine.reduce((sum, r) => sum + r.non2xx, 0),
      errors: mine.reduce((sum, r) => sum + r.errors, 0),
      timeouts: mine.reduce((sum, r) => sum + r.timeouts, 0),
    });
  }
  return summaries;
}

/** The comparisons the report calls out: [numerator, denominator]. */
export const COMPARISONS: readonly [string, string][] = [
  ["erk", "erl-rlr"],
  ["erk", "rlf"],
  ["erk", "floor"],
  ["erk-nh", "floor"],
  ["erk-nh", "rlf"],
  ["erk-2p", "erk"],
  ["erk-ap", "erk"],
  ["erk-nr", "erk"],
  ["erk-nr", "erk-ap"],
];

/**
 * The bar node-redis must clear: its path at least this × the ioredis path's throughput, and
 * its CPU per request at most 1 / this × the ioredis path's (the same bar on requests per
 * CPU-second).
 */
export const NODE_REDIS_MIN_RATIO = 0.95;

/** The node-redis bar's verdicts on a throughput and a CPU-per-unit ratio (node-redis / ioredis). */
export function nodeRedisVerdict(throughput: number, cpu: number): string {
  const verdict = (value: number, met: boolean) =>
    Number.isFinite(value) ? (met ? "**met**" : "**NOT met**") : "n/a";
  const maxCpu = 1 / NODE_REDIS_MIN_RATIO;
  return (
    `throughput ×${fmt(throughput, 2)} (target ≥ ${NODE_REDIS_MIN_RATIO}) → ${verdict(throughput, throughput >= NODE_REDIS_MIN_RATIO)}; ` +
    `CPU ×${fmt(cpu, 2)} (target ≤ ${fmt(maxCpu, 3)}) → ${verdict(cpu, cpu <= maxCpu)}`
  );
}

/**
 * The node-redis bar between two HTTP entries (`nodeRedis` / `ioredis`): medians of the
 * per-round ratios of req/s and CPU µs/req.
 */
export function nodeRedisTargetLine(
  runs: readonly RunResult[],
  nodeRedis: string,
  ioredis: string,
): string {
  const ran = (v: string) => runs.some((r) => r.variant === v);
  if (!ran(nodeRedis) || !ran(ioredis))
    return `- node-redis ≥ ${NODE_REDIS_MIN_RATIO}× ioredis, ${nodeRedis} / ${ioredis}: not measured`;
  const rps = medianRatio(runs, nodeRedis, ioredis, "reqPerSec");
  const cpu = medianRatio(runs, nodeRedis, ioredis, "cpuUsPerReq");
  return `- node-redis ≥ ${NODE_REDIS_MIN_RATIO}× ioredis, ${nodeRedis} / ${ioredis} (req/s; CPU µs/req): ${nodeRedisVerdict(rps, cpu)}`;
}

export interface Comparison {
  numerator: string;
  denominator: string;
  /** Median per-round ratio of req/s. */
  reqPerSec: number;
  /** Median per-round ratio of CPU µs per request. */
  cpuUsPerReq: number;
}

export function compare(
  runs: readonly RunResult[],
  pairs: readonly [string, string][] = COMPARISONS,
): Comparison[] {
  return pairs.map(([numerator, denominator]) => ({
    numerator,
    denominator,
    reqPerSec: medianRatio(runs, numerator, denominator, "reqPerSec"),
    cpuUsPerReq: medianRatio(runs, numerator, denominator, "cpuUsPerReq"),
  }));
}

/** The HTTP benchmarks' progress figures of one run, then `extra` (problems, other figures). */
export function httpProgress(run: RunResult, extra = ""): string {
  const bad = run.non2xx + run.errors + run.timeouts;
  return (
    `${Math.round(run.reqPerSec).toString().padStart(6)} req/s  ` +
    `p99 ${run.p99Ms} ms  cpu ${run.cpuUsPerReq.toFixed(1)} µs/req  redis ${run.redisCmdsPerReq.toFixed(2)} cmds/req` +
    (extra === "" ? "" : `  ${extra}`) +
    (bad > 0 ? `  !! non-2xx ${run.non2xx}, errors ${run.errors}, timeouts ${run.timeouts}` : "")
  );
}

/** Share of the server's core used by other processes above which a run is called noisy. */
export const NOISY_SHARE = 0.2;

/** The HTTP benchmarks' "Outside load" text: runs whose server core was busy with other work. */
export function outsideLoadLine(runs: readonly RunResult[]): string {
  const measured = runs.filter((r) => r.otherLoadOnServerCore !== undefined);
  if (measured.length === 0) return "Not measured (no pinning).";
  const noisy = measured.filter((r) => r.otherLoadOnServerCore! > NOISY_SHARE);
  return (
    `${noisy.length} of ${measured.length} runs had more than ${NOISY_SHARE * 100} % of CPU 0 (the server's core) used by other processes` +
    (noisy.length === 0
      ? "."
      : `: ${noisy.map((r) => `${r.variant} round ${r.round} (${percent(r.otherLoadOnServerCore)})`).join(", ")}.`) +
    ` Median: ${percent(median(measured.map((r) => r.otherLoadOnServerCore!)))}.`
  );
}

export function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** A share (0–1) as a whole percentage, or "n/a". */
export function percent(share: number | undefined): string {
  return share === undefined ? "n/a" : `${Math.round(share * 100)} %`;
}

/** An integer with thousands separators. */
export function fmtInt(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

export function summaryTable(summaries: readonly VariantSummary[]): string {
  const lines = [
    "| variant | req/s | ×bare | p99 ms | ×bare | CPU µs/req | ×bare | Redis cmds/req | script calls/req |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    const m = s.median;
    const r = s.ratioToBare;
    lines.push(
      `| ${s.variant} | ${fmtInt(m.reqPerSec)} | ${fmt(r.reqPerSec, 2)} | ${fmt(m.p99Ms, 1)} | ${fmt(r.p99Ms, 2)} | ` +
        `${fmt(m.cpuUsPerReq, 1)} | ${fmt(r.cpuUsPerReq, 2)} | ${fmt(m.redisCmdsPerReq, 2)} | ${fmt(m.scriptCallsPerReq, 2)} |`,
    );
  }
  return lines.join("\n");
}

export function comparisonLines(comparisons: readonly Comparison[]): string {
  return comparisons
    .map(
      (c) =>
        `- ${c.numerator} / ${c.denominator}: req/s ×${fmt(c.reqPerSec, 2)}, CPU µs/req ×${fmt(c.cpuUsPerReq, 2)}`,
    )
    .join("\n");
}

export function rawTable(runs: readonly RunResult[]): string {
  const lines = [
    "| round | order | variant | req/s | p99 ms | CPU µs/req | Redis cmds/req | script calls/req | served | non-2xx | errors |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.order} | ${r.variant} | ${fmtInt(r.reqPerSec)} | ${fmt(r.p99Ms, 0)} | ${fmt(r.cpuUsPerReq, 1)} | ` +
        `${fmt(r.redisCmdsPerReq, 2)} | ${fmt(r.scriptCallsPerReq, 2)} | ${r.served} | ${r.non2xx} | ${r.errors + r.timeouts} |`,
    );
  }
  return lines.join("\n");
}

/** Per variant, the median Redis calls per request of each command seen. */
export function commandMix(
  runs: readonly RunResult[],
  order: readonly string[] = VARIANTS,
): string {
  const lines: string[] = [];
  for (const variant of order) {
    const mine = runs.filter((r) => r.variant === variant);
    if (mine.length === 0) continue;
    const names = [...new Set(mine.flatMap((r) => Object.keys(r.commands)))].sort();
    const parts = names
      .map((name) => [name, median(mine.map((r) => r.commands[name] ?? 0))] as const)
      .filter(([, perReq]) => perReq >= 0.005)
      .map(([name, perReq]) => `${name} ${perReq.toFixed(2)}`);
    lines.push(`- ${variant}: ${parts.length > 0 ? parts.join(", ") : "none"}`);
  }
  return lines.join("\n");
}
