/**
 * Aggregation and formatting of the HTTP benchmarks' per-run measurements: medians over
 * rounds, and ratios to a reference row taken round by round (never a ratio of medians).
 */

/**
 * One measured run of one entry in one round (rate limit: a variant; cache: `variant/handler`;
 * session: `variant/scenario`).
 */
export interface RunResult {
  round: number;
  /** The entry measured. */
  variant: string;
  /** Position of the entry within its round (0 = first). */
  order: number;
  /** Server process user + system CPU time per request received, µs: the primary figure. */
  cpuUsPerReq: number;
  /** The load generator's requests per second. */
  reqPerSec: number;
  /** The load generator's latency percentiles, ms. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Responses the load generator counted. */
  requests: number;
  /** Requests the server received on the measured path in the window (the divisor of per-request figures). */
  served: number;
  /** Responses with a status ≥ 400 (wrk; autocannon: outside 2xx). */
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Redis commands per request, script calls and the commands they ran included (INFO commandstats). */
  redisCmdsPerReq: number;
  /** EVAL/EVALSHA (and _RO, FCALL) calls per request. */
  scriptCallsPerReq: number;
  /** Redis calls per request by command name (only commands seen in the window). */
  commands: Record<string, number>;
  /** Commands the server's Redis clients sent per request (round trips). */
  roundTripsPerReq: number;
  /** Cache benchmark: handler runs over the whole run (warming and warm-up included). */
  handlerRuns?: number;
  /** Cache benchmark: handler runs within the measured window. */
  handlerRunsMeasured?: number;
  /** Cache benchmark, this library's variants: Redis failures counted by `stats().errors`. */
  cacheErrors?: number;
  /** The first lines the server wrote to stderr, if any. */
  serverLog?: string;
  /** When pinned: the share of the server's core (CPU 0) other processes used, 0-1. */
  otherLoadOnServerCore?: number;
  /** When pinned: the share of CPU 1 neither the load generator nor Redis used, 0-1. */
  otherLoadOnLoadCore?: number;
  /** Earlier attempts of this run thrown away as noisy (`BENCH_RETRIES`). */
  retriedNoisy?: number;
  /** When the run ended. */
  at: string;
}

/** A run that could not be measured (server did not start, load generator failed, ...). */
export interface RunFailure {
  round: number;
  variant: string;
  error: string;
}

/** The problem lines every report shares: what a server logged, and the runs that failed. */
export function runProblems(
  runs: readonly { variant: string; round: number; serverLog?: string }[],
  failures: readonly RunFailure[],
): string[] {
  return [
    ...runs
      .filter((r) => r.serverLog !== undefined)
      .map(
        (r) => `- ${r.variant} round ${r.round}: server log: ${r.serverLog!.replace(/\n/g, " / ")}`,
      ),
    ...failures.map((f) => `- ${f.variant} failed in round ${f.round}: ${f.error.split("\n")[0]}`),
  ];
}

export const METRICS = [
  "cpuUsPerReq",
  "reqPerSec",
  "p50Ms",
  "p99Ms",
  "redisCmdsPerReq",
  "scriptCallsPerReq",
  "roundTripsPerReq",
] as const;
export type Metric = (typeof METRICS)[number];

/** Median of the finite values (mean of the middle two for an even count); NaN when none. */
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

/** Per entry: the median of each metric, and its per-round ratios to the reference row. */
export interface VariantSummary {
  variant: string;
  /** The entry its ratios are to (bare Express on the same handler or scenario). */
  reference: string;
  rounds: number;
  median: Record<Metric, number>;
  /** Median of the per-round ratios to `reference`. */
  ratio: Record<Metric, number>;
  /** The per-round ratios of CPU µs/req to `reference`, in round order. */
  cpuRatios: number[];
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Per round where both ran: `a.metric / b.metric`, in round order. */
export function roundRatios<R extends { round: number; variant: string }>(
  runs: readonly R[],
  a: string,
  b: string,
  value: (run: R) => number,
): number[] {
  const right = new Map(runs.filter((r) => r.variant === b).map((r) => [r.round, r]));
  return runs
    .filter((r) => r.variant === a && right.has(r.round))
    .sort((x, y) => x.round - y.round)
    .map((r) => value(r) / value(right.get(r.round)!))
    .filter((ratio) => Number.isFinite(ratio));
}

/** Median over rounds of `a.metric / b.metric`, counting only rounds where both ran. */
export function medianRatio(
  runs: readonly RunResult[],
  a: string,
  b: string,
  metric: Metric,
): number {
  return median(roundRatios(runs, a, b, (r) => r[metric]));
}

/** Summaries in `order` (the entries that ran); ratios are to `referenceOf(entry)`. */
export function summarize(
  runs: readonly RunResult[],
  order: readonly string[],
  referenceOf: (entry: string) => string,
): VariantSummary[] {
  const summaries: VariantSummary[] = [];
  for (const variant of order) {
    const mine = runs.filter((r) => r.variant === variant);
    if (mine.length === 0) continue;
    const reference = referenceOf(variant);
    const med = {} as Record<Metric, number>;
    const ratio = {} as Record<Metric, number>;
    for (const metric of METRICS) {
      med[metric] = median(mine.map((r) => r[metric]));
      ratio[metric] = medianRatio(runs, variant, reference, metric);
    }
    summaries.push({
      variant,
      reference,
      rounds: mine.length,
      median: med,
      ratio,
      cpuRatios: roundRatios(runs, variant, reference, (r) => r.cpuUsPerReq),
      non2xx: mine.reduce((sum, r) => sum + r.non2xx, 0),
      errors: mine.reduce((sum, r) => sum + r.errors, 0),
      timeouts: mine.reduce((sum, r) => sum + r.timeouts, 0),
    });
  }
  return summaries;
}

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
    `CPU ×${fmt(cpu, 2)} (target ≤ ${fmt(maxCpu, 3)}) → ${verdict(cpu, cpu <= maxCpu)}; ` +
    `throughput ×${fmt(throughput, 2)} (target ≥ ${NODE_REDIS_MIN_RATIO}) → ${verdict(throughput, throughput >= NODE_REDIS_MIN_RATIO)}`
  );
}

/**
 * The node-redis bar between two HTTP entries (`nodeRedis` / `ioredis`): medians of the
 * per-round ratios of CPU µs/req and req/s.
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
  return `- node-redis ≥ ${NODE_REDIS_MIN_RATIO}× ioredis, ${nodeRedis} / ${ioredis} (CPU µs/req; req/s): ${nodeRedisVerdict(rps, cpu)}`;
}

/**
 * The comparisons `pairs` ([numerator, denominator], both run), as report lines: medians of
 * per-round ratios of CPU µs/req (with each round's) and req/s.
 */
export function comparisonLines(
  runs: readonly RunResult[],
  pairs: readonly (readonly [string, string])[],
): string {
  const ran = (v: string) => runs.some((r) => r.variant === v);
  const lines = pairs
    .filter(([a, b]) => ran(a) && ran(b))
    .map(([a, b]) => {
      const cpu = roundRatios(runs, a, b, (r) => r.cpuUsPerReq);
      return (
        `- ${a} / ${b}: CPU µs/req ×${fmt(median(cpu), 2)} (per round ${cpu.map((x) => fmt(x, 2)).join(" / ")}), ` +
        `req/s ×${fmt(medianRatio(runs, a, b, "reqPerSec"), 2)}`
      );
    });
  return lines.length > 0 ? lines.join("\n") : "None (the entries compared did not all run).";
}

/** The HTTP benchmarks' progress figures of one run, then `extra` (problems, other figures). */
export function httpProgress(run: RunResult, extra = "", expectRejections = false): string {
  const bad = (expectRejections ? 0 : run.non2xx) + run.errors + run.timeouts;
  return (
    `cpu ${fmt(run.cpuUsPerReq, 1).padStart(6)} µs/req  ${Math.round(run.reqPerSec).toString().padStart(6)} req/s  ` +
    `p50 ${fmt(run.p50Ms, 2)} ms  p99 ${fmt(run.p99Ms, 2)} ms  redis ${fmt(run.redisCmdsPerReq, 2)} cmds/req` +
    (run.otherLoadOnServerCore === undefined
      ? ""
      : `  other load: CPU 0 ${percent(run.otherLoadOnServerCore)}, CPU 1 ${percent(run.otherLoadOnLoadCore)}`) +
    (extra === "" ? "" : `  ${extra}`) +
    (bad > 0 ? `  !! non-2xx ${run.non2xx}, errors ${run.errors}, timeouts ${run.timeouts}` : "")
  );
}

/** Share of a core used by other processes above which a run is called noisy. */
export const NOISY_SHARE = 0.2;

/** Above this share of a core used by other processes, a run is run again (peer-bench: 0.25). */
export const MAX_OTHER_LOAD = 0.25;

/** The HTTP suites' noise: the larger other load of CPU 0 (the server's) and CPU 1 (load + Redis). */
export function httpNoise(run: RunResult): number | undefined {
  const shares = [run.otherLoadOnServerCore, run.otherLoadOnLoadCore].filter(
    (x): x is number => x !== undefined,
  );
  return shares.length === 0 ? undefined : Math.max(...shares);
}

/** The HTTP benchmarks' "Outside load" text: runs whose cores were busy with other work. */
export function outsideLoadLine(runs: readonly RunResult[]): string {
  const part = (core: string, share: (r: RunResult) => number | undefined) => {
    const measured = runs.filter((r) => share(r) !== undefined);
    if (measured.length === 0) return `${core}: not measured.`;
    const noisy = measured.filter((r) => share(r)! > NOISY_SHARE);
    return (
      `${noisy.length} of ${measured.length} runs had more than ${NOISY_SHARE * 100} % of ${core} used by other processes` +
      (noisy.length === 0
        ? ""
        : `: ${noisy.map((r) => `${r.variant} round ${r.round} (${percent(share(r))})`).join(", ")}`) +
      ` (median ${percent(median(measured.map((r) => share(r)!)))}).`
    );
  };
  const retried = runs.filter((r) => (r.retriedNoisy ?? 0) > 0);
  return [
    part("CPU 0 (the server's core)", (r) => r.otherLoadOnServerCore),
    part("CPU 1 (the load generator's and Redis's core)", (r) => r.otherLoadOnLoadCore),
    retried.length === 0
      ? "No noisy attempt was thrown away."
      : `Run again after a noisy attempt (over ${MAX_OTHER_LOAD * 100} % of a core): ${retried.map((r) => `${r.variant} round ${r.round} (×${r.retriedNoisy})`).join(", ")}.`,
    "Server CPU µs/req is the figure least moved by load on other cores (other processes take wall time, not the server's CPU time); " +
      "load on CPU 0 itself still inflates it (context switches, caches), so compare rows whose outside load was low.",
  ].join(" ");
}

export function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** A share (0–1) as a whole percentage, or "n/a". */
export function percent(share: number | undefined): string {
  return share === undefined || !Number.isFinite(share) ? "n/a" : `${Math.round(share * 100)} %`;
}

/** An integer with thousands separators. */
export function fmtInt(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

/** Per entry, the median Redis calls per request of each command seen. */
export function commandMix(runs: readonly RunResult[], order: readonly string[]): string {
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
