/**
 * The lock benchmark's report: per-variant summaries, targets, comparisons, raw runs.
 */
import { config } from "./config.js";
import type { LockRun } from "./lock-run.js";
import { ERK_LOCK_VARIANTS, type LockVariant } from "./lock-variants.js";
import {
  fmt,
  fmtInt,
  median,
  NODE_REDIS_MIN_RATIO,
  nodeRedisVerdict,
  percent,
  type RunFailure,
  roundRatios,
} from "./stats.js";

/** Share of CPU 0 used by other processes above which a run is called noisy. */
export const NOISY_SHARE = 0.2;
/** The issue's targets. */
export const MAX_ROUND_TRIPS = 2;
export const MIN_HANDOFF_SPEEDUP = 10;

export const NUMERIC = [
  "cycleMedianUs",
  "cycleP99Us",
  "roundTripsPerCycle",
  "cpuUsPerCycle",
  "redisCmdsPerCycle",
  "handoffMedianMs",
  "handoffP99Ms",
  "handoffMaxMs",
  "acquisitionsPerSec",
  "roundTripsPerAcquisition",
  "holdMedianMs",
] as const;
export type Numeric = (typeof NUMERIC)[number];

export interface LockSummary {
  variant: LockVariant;
  rounds: number;
  /** Median over rounds of each figure. */
  median: Record<Numeric, number>;
  acquisitions: number;
  failedAcquisitions: number;
  overlaps: number;
  releaseNotHeld: number;
}

export function summarizeLocks(runs: readonly LockRun[]): LockSummary[] {
  return config.lockVariants.flatMap((variant) => {
    const mine = runs.filter((r) => r.variant === variant);
    if (mine.length === 0) return [];
    const med = {} as Record<Numeric, number>;
    for (const key of NUMERIC) med[key] = median(mine.map((r) => r[key]));
    const sum = (f: (r: LockRun) => number) => mine.reduce((a, r) => a + f(r), 0);
    return [
      {
        variant,
        rounds: mine.length,
        median: med,
        acquisitions: sum((r) => r.acquisitions),
        failedAcquisitions: sum((r) => r.failedAcquisitions),
        overlaps: sum((r) => r.overlaps),
        releaseNotHeld: sum((r) => r.releaseNotHeld),
      },
    ];
  });
}

/** Median over rounds of `a.key / b.key`, counting rounds where both ran. */
export function roundRatio(runs: readonly LockRun[], a: string, b: string, key: Numeric): number {
  const right = new Map(runs.filter((r) => r.variant === b).map((r) => [r.round, r]));
  const ratios: number[] = [];
  for (const run of runs.filter((r) => r.variant === a)) {
    const other = right.get(run.round);
    if (other !== undefined && other[key] !== 0) ratios.push(run[key] / other[key]);
  }
  return median(ratios);
}

/**
 * The worker table: CPU µs per uncontended acquire+release first, its ratio to the `floor` row
 * (median of per-round ratios) and each round's, the cycle's latency and its ratio, round
 * trips; then the contended phase (the floor has none).
 */
export function summaryTable(summaries: readonly LockSummary[], runs: readonly LockRun[]): string {
  const lines = [
    "| variant | CPU µs / acquire+release | ×floor | per-round ×floor | acquire+release µs | ×floor | p99 µs | round trips / acquire+release | hand-off ms | p99 ms | acquisitions/s | round trips / acquisition (contended) | failed acquisitions |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    const m = s.median;
    const cpu = roundRatios(runs, s.variant, "floor", (r) => r.cpuUsPerCycle);
    const cycle = median(roundRatios(runs, s.variant, "floor", (r) => r.cycleMedianUs));
    const contended = s.variant !== "floor";
    lines.push(
      `| ${s.variant} | ${fmt(m.cpuUsPerCycle, 1)} | ${fmt(median(cpu), 2)} | ${cpu.map((x) => fmt(x, 2)).join(" / ") || "n/a"} | ` +
        `${fmt(m.cycleMedianUs, 0)} | ${fmt(cycle, 2)} | ${fmt(m.cycleP99Us, 0)} | ${fmt(m.roundTripsPerCycle, 2)} | ` +
        (contended
          ? `${fmt(m.handoffMedianMs, 2)} | ${fmt(m.handoffP99Ms, 2)} | ${fmtInt(m.acquisitionsPerSec)} | ` +
            `${fmt(m.roundTripsPerAcquisition, 2)} | ${s.failedAcquisitions} of ${s.acquisitions + s.failedAcquisitions} |`
          : "- | - | - | - | - |"),
    );
  }
  return lines.join("\n");
}

export function targetLines(summaries: readonly LockSummary[], runs: readonly LockRun[]): string[] {
  const find = (v: LockVariant) => summaries.find((s) => s.variant === v);
  const erk = find("erk-lock");
  const lines: string[] = [];
  for (const variant of ERK_LOCK_VARIANTS) {
    const s = find(variant);
    if (s === undefined) continue;
    const trips = runs.filter((r) => r.variant === variant).map((r) => r.roundTripsPerCycle);
    const worst = Math.max(...trips);
    lines.push(
      `- round trips per uncontended acquire+release, ${variant} (target ≤ ${MAX_ROUND_TRIPS}): median ${fmt(s.median.roundTripsPerCycle, 2)}, ` +
        `worst round ${fmt(worst, 2)} → ${worst <= MAX_ROUND_TRIPS + 1e-9 ? "**met**" : "**NOT met**"}`,
    );
  }
  if (erk === undefined) return [...lines, "- erk-lock not measured: no other target checked"];
  if (find("erk-lock-nr") !== undefined) {
    // Throughput of sequential cycles is 1 / their time: ioredis µs / node-redis µs.
    const speed = roundRatio(runs, "erk-lock", "erk-lock-nr", "cycleMedianUs");
    const cpu = roundRatio(runs, "erk-lock-nr", "erk-lock", "cpuUsPerCycle");
    lines.push(
      `- node-redis ≥ ${NODE_REDIS_MIN_RATIO}× ioredis, erk-lock-nr / erk-lock (uncontended acquire+release per second, i.e. 1 / median µs; CPU µs per cycle): ` +
        nodeRedisVerdict(speed, cpu),
    );
  }
  const redlock = find("redlock");
  if (redlock === undefined) {
    lines.push("- hand-off against node-redlock's defaults: redlock not measured");
  } else {
    const perRound = roundRatio(runs, "redlock", "erk-lock", "handoffMedianMs");
    const ofMedians = redlock.median.handoffMedianMs / erk.median.handoffMedianMs;
    lines.push(
      `- median hand-off at least ${MIN_HANDOFF_SPEEDUP}× faster than node-redlock with its default retry settings: ` +
        `${fmt(erk.median.handoffMedianMs, 3)} ms against ${fmt(redlock.median.handoffMedianMs, 2)} ms, ` +
        `×${fmt(perRound, 1)} (median of per-round ratios; ×${fmt(ofMedians, 1)} as a ratio of medians) → ` +
        `${Number.isFinite(perRound) && perRound >= MIN_HANDOFF_SPEEDUP ? "**met**" : "**NOT met**"}`,
    );
  }
  return lines;
}

export function comparisonLines(runs: readonly LockRun[]): string {
  return config.lockVariants
    .filter((v) => v !== "erk-lock" && v !== "floor" && runs.some((r) => r.variant === v))
    .map(
      (v) =>
        `- ${v} / erk-lock: hand-off ×${fmt(roundRatio(runs, v, "erk-lock", "handoffMedianMs"), 1)}, ` +
        `acquisitions/s ×${fmt(roundRatio(runs, v, "erk-lock", "acquisitionsPerSec"), 2)}, ` +
        `uncontended acquire+release ×${fmt(roundRatio(runs, v, "erk-lock", "cycleMedianUs"), 2)}, ` +
        `its CPU ×${fmt(roundRatio(runs, v, "erk-lock", "cpuUsPerCycle"), 2)}`,
    )
    .join("\n");
}

export function commandMix(runs: readonly LockRun[], pick: (r: LockRun) => Record<string, number>) {
  return config.lockVariants
    .flatMap((variant) => {
      const mine = runs.filter((r) => r.variant === variant);
      if (mine.length === 0) return [];
      const names = [...new Set(mine.flatMap((r) => Object.keys(pick(r))))].sort();
      const parts = names
        .map((name) => [name, median(mine.map((r) => pick(r)[name] ?? 0))] as const)
        .filter(([, per]) => per >= 0.005)
        .map(([name, per]) => `${name} ${per.toFixed(2)}`);
      return [`- ${variant}: ${parts.length > 0 ? parts.join(", ") : "none"}`];
    })
    .join("\n");
}

export function rawTable(runs: readonly LockRun[]): string {
  const lines = [
    "| round | order | variant | acq+rel µs | p99 µs | CPU µs | round trips | hand-offs | hand-off ms | p99 ms | max ms | acq/s | round trips / acq | hold ms | failed | overlaps | other load on CPU 0 / CPU 1 | ended |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.order} | ${r.variant} | ${fmt(r.cycleMedianUs, 0)} | ${fmt(r.cycleP99Us, 0)} | ${fmt(r.cpuUsPerCycle, 1)} | ${fmt(r.roundTripsPerCycle, 2)} | ` +
        `${r.handoffs} | ${fmt(r.handoffMedianMs, 3)} | ${fmt(r.handoffP99Ms, 2)} | ${fmt(r.handoffMaxMs, 1)} | ${fmtInt(r.acquisitionsPerSec)} | ` +
        `${fmt(r.roundTripsPerAcquisition, 2)} | ${fmt(r.holdMedianMs, 2)} | ${r.failedAcquisitions} | ${r.overlaps} | ` +
        `${percent(r.otherLoadOnWorkerCore)} / ${percent(r.otherLoadOnRedisCore)} | ${r.at} |`,
    );
  }
  return lines.join("\n");
}

export function problemLines(
  summaries: readonly LockSummary[],
  runs: readonly LockRun[],
  failures: readonly RunFailure[],
): { lines: string[]; failing: boolean } {
  const lines: string[] = [];
  let failing = failures.length > 0;
  for (const s of summaries) {
    if (s.failedAcquisitions > 0) {
      const sample = runs.find((r) => r.variant === s.variant && r.failureSample !== undefined);
      lines.push(
        `- ${s.variant}: ${s.failedAcquisitions} of ${s.acquisitions + s.failedAcquisitions} contended acquisitions gave up` +
          (sample === undefined ? "" : ` (${sample.failureSample})`) +
          (ERK_LOCK_VARIANTS.has(s.variant)
            ? ""
            : "; the library's own limit, not counted as a benchmark failure"),
      );
      if (ERK_LOCK_VARIANTS.has(s.variant)) failing = true;
    }
    if (s.overlaps > 0) {
      lines.push(
        `- ${s.variant}: ${s.overlaps} acquisitions resolved before the previous holder called release (mutual exclusion broken)`,
      );
      failing = true;
    }
    if (s.releaseNotHeld > 0) {
      lines.push(`- ${s.variant}: ${s.releaseNotHeld} releases found the lock no longer held`);
      failing = true;
    }
  }
  for (const r of runs) {
    if (r.workerLog !== undefined)
      lines.push(
        `- ${r.variant} round ${r.round}: workers logged: ${r.workerLog.replace(/\n/g, " / ")}`,
      );
  }
  for (const f of failures)
    lines.push(`- ${f.variant} failed in round ${f.round}: ${f.error.split("\n")[0]}`);
  return { lines, failing };
}

export function noiseLine(runs: readonly LockRun[]): string {
  const part = (core: string, who: string, share: (r: LockRun) => number | undefined): string => {
    const measured = runs.filter((r) => share(r) !== undefined);
    if (measured.length === 0) return `${core}: not measured (no pinning).`;
    const noisy = measured.filter((r) => share(r)! > NOISY_SHARE);
    return (
      `${noisy.length} of ${measured.length} runs had more than ${NOISY_SHARE * 100} % of ${core} (${who}) used by other processes` +
      (noisy.length === 0
        ? "."
        : `: ${noisy.map((r) => `${r.variant} round ${r.round} (${percent(share(r))})`).join(", ")}.`) +
      ` Median: ${percent(median(measured.map((r) => share(r)!)))}.`
    );
  };
  return [
    part("CPU 0", "the workers' core", (r) => r.otherLoadOnWorkerCore),
    part("CPU 1", "Redis's core", (r) => r.otherLoadOnRedisCore),
    "This runner is not pinned: where it runs, it counts as other load.",
  ].join(" ");
}
