/**
 * The lock benchmark: this library's `createLockManager()` against node-redlock (its default
 * retry settings, and tuned to retry every 5-15 ms) and redis-semaphore's `Mutex`, all on
 * ioredis against the runner's redis-server. See bench/README.md.
 *
 * A run starts `lockWaiters` worker processes (`lock-worker.ts`, pinned to CPU 0, each with its
 * own ioredis connection) for one variant, then:
 *
 * 1. uncontended: worker 0 alone runs a warm-up loop, then `lockIterations` sequential
 *    acquire+release cycles on the resource, each timed, counting the commands its client sent;
 * 2. contended: batches. In each, every worker is told at once to acquire the resource (waiting
 *    as the variant waits), hold it `lockHoldMs` and release it, once; so each batch has
 *    `lockWaiters` acquisitions and `lockWaiters - 1` hand-offs. A worker that has had its turn
 *    does not ask again within the batch: every hand-off goes to a waiter that was waiting.
 *    Two warm-up batches first (this library subscribes to release messages on first wait).
 *
 * Hand-off latency is the time from one holder's `release()` call to the next holder's
 * acquisition resolving. Every worker stamps its steps with `process.hrtime.bigint()`,
 * CLOCK_MONOTONIC, which is one clock for every process on the machine, so stamps from
 * different workers compare directly.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import {
  type BatchReply,
  type CpuReply,
  isLockVariant,
  LOCK_DESCRIPTIONS,
  type LockVariant,
  REDLOCK_TUNED,
  REPLY_MARK,
  type UncontendedReply,
  type WorkerCommand,
  type WorkerReply,
} from "./lock-variants.js";
import { commandStats, cpuBusyUs, redisCpuUs, statDelta } from "./measure.js";
import { type LineWorker, pinning, startLineWorker, stopChild } from "./processes.js";
import { fmt, fmtInt, median, percent, quantile, type RunFailure } from "./stats.js";
import type { MeasuredRun, SuiteDefinition } from "./suite.js";

/** Sequential acquire+release cycles of the uncontended warm-up. */
const WARMUP_ITERATIONS = 200;
/** Contended batches run before the measured ones. */
const WARMUP_BATCHES = 2;
/** Longest wait for a worker's answer to one command (ms). */
const ANSWER_TIMEOUT_MS = 120_000;
/** Share of CPU 0 used by other processes above which a run is called noisy. */
const NOISY_SHARE = 0.2;
/** The issue's targets. */
const MAX_ROUND_TRIPS = 2;
const MIN_HANDOFF_SPEEDUP = 10;

/** One measured run of one lock variant. */
export interface LockRun extends MeasuredRun {
  // Uncontended: sequential acquire+release by one worker.
  /** Measured acquire+release cycles. */
  iterations: number;
  /** Median / p99 / mean of one acquire+release, µs. */
  cycleMedianUs: number;
  cycleP99Us: number;
  cycleMeanUs: number;
  /** Commands the worker's client sent per acquire+release (round trips). */
  roundTripsPerCycle: number;
  /** INFO commandstats calls per acquire+release (script calls and the commands they ran). */
  redisCmdsPerCycle: number;
  /** INFO commandstats calls per acquire+release, by command. */
  cycleCommands: Record<string, number>;

  // Contended: batches of `waiters` workers, each acquiring once.
  waiters: number;
  batches: number;
  acquisitions: number;
  /** Acquisitions that gave up (the library's timeout or retry limit). */
  failedAcquisitions: number;
  /** The first failure's error. */
  failureSample?: string;
  /** Hand-offs measured (consecutive successful acquisitions within a batch). */
  handoffs: number;
  handoffMedianMs: number;
  handoffP99Ms: number;
  handoffMaxMs: number;
  /** Every hand-off, ms (µs resolution), in batch order. */
  handoffSamplesMs: number[];
  /** 1 / mean time between consecutive acquisitions within a batch. */
  acquisitionsPerSec: number;
  /** Commands the workers' clients sent per successful acquisition (attempts and release). */
  roundTripsPerAcquisition: number;
  /** INFO commandstats calls per successful acquisition, by command. */
  contendedCommands: Record<string, number>;
  /** Median time a holder held the lock (acquired → release called), ms. */
  holdMedianMs: number;
  /** Acquisitions that resolved before the previous holder called release (must be 0). */
  overlaps: number;
  /** Releases that found the lock no longer held (this library's release() said false; must be 0). */
  releaseNotHeld: number;

  /** When pinned: share of CPU 0 used by other processes while the run was measured, 0-1. */
  otherLoadOnWorkerCore?: number;
  /** When pinned: share of CPU 1 (Redis's core) used by processes other than Redis, 0-1. */
  otherLoadOnRedisCore?: number;
  /** The first lines the workers logged (library warnings), if any. */
  workerLog?: string;
  /** When the run ended. */
  at: string;
}

function parseVariant(entry: string): LockVariant {
  if (!isLockVariant(entry)) throw new Error(`unknown lock variant ${entry}`);
  return entry;
}

async function ask<T extends WorkerReply["type"]>(
  worker: LineWorker,
  command: WorkerCommand,
  type: T,
): Promise<Extract<WorkerReply, { type: T }>> {
  worker.send(JSON.stringify(command));
  const reply = JSON.parse(await worker.next(ANSWER_TIMEOUT_MS)) as WorkerReply;
  if (reply.type === "error") throw new Error(`worker failed: ${reply.message}`);
  if (reply.type !== type) throw new Error(`worker answered ${reply.type}, expected ${type}`);
  return reply as Extract<WorkerReply, { type: T }>;
}

async function startWorkers(variant: LockVariant, redisUrl: string): Promise<LineWorker[]> {
  const started = await Promise.allSettled(
    Array.from({ length: config.lockWaiters }, (_, i) =>
      startLineWorker(`${variant}#${i}`, "lock-worker.ts", [variant, redisUrl], REPLY_MARK, 0),
    ),
  );
  const workers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(workers.map((w) => stopChild(w.child)));
    throw failed.reason;
  }
  return workers;
}

/** Total CPU time of `workers` so far, µs. */
async function workersCpuUs(workers: readonly LineWorker[]): Promise<number> {
  const replies: CpuReply[] = await Promise.all(workers.map((w) => ask(w, { cmd: "cpu" }, "cpu")));
  return replies.reduce((sum, r) => sum + r.cpuUs, 0);
}

function perUnit(delta: Map<string, number>, units: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of delta) out[name] = units > 0 ? calls / units : Number.NaN;
  return out;
}

const ms = (ns: bigint) => Number(ns) / 1e6;

/** The contended phase's figures from its batches' replies. */
function analyzeBatches(batches: readonly BatchReply[][]) {
  const handoffs: number[] = [];
  const intervals: number[] = [];
  const holds: number[] = [];
  let acquisitions = 0;
  let failed = 0;
  let failureSample: string | undefined;
  let overlaps = 0;
  let releaseNotHeld = 0;
  let sent = 0;
  for (const replies of batches) {
    for (const r of replies) sent += r.sent;
    const held = replies
      .filter((r) => {
        if (r.error === undefined) return true;
        failed++;
        failureSample ??= r.error;
        return false;
      })
      .map((r) => ({
        acquired: BigInt(r.acquiredAt!),
        releaseCalled: BigInt(r.releaseCalledAt!),
        releaseHeld: r.releaseHeld !== false,
      }))
      .sort((a, b) => (a.acquired < b.acquired ? -1 : a.acquired > b.acquired ? 1 : 0));
    acquisitions += held.length;
    for (const [i, h] of held.entries()) {
      holds.push(ms(h.releaseCalled - h.acquired));
      if (!h.releaseHeld) releaseNotHeld++;
      const previous = held[i - 1];
      if (previous === undefined) continue;
      const handoff = ms(h.acquired - previous.releaseCalled);
      if (handoff < 0) overlaps++;
      else handoffs.push(Math.round(handoff * 1000) / 1000);
      intervals.push(ms(h.acquired - previous.acquired));
    }
  }
  const intervalS = intervals.reduce((a, b) => a + b, 0) / 1000;
  return {
    acquisitions,
    failed,
    failureSample,
    overlaps,
    releaseNotHeld,
    handoffs,
    acquisitionsPerSec: intervalS > 0 ? intervals.length / intervalS : Number.NaN,
    holdMedianMs: median(holds),
    roundTripsPerAcquisition: acquisitions > 0 ? sent / acquisitions : Number.NaN,
  };
}

async function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<LockRun> {
  const variant = parseVariant(entry);
  await admin.flushall();
  const workers = await startWorkers(variant, redisUrl);
  try {
    const first = workers[0]!;
    const cpuBefore = await workersCpuUs(workers);
    const redisCpuBefore = await redisCpuUs(admin);
    const core0Before = pinning ? cpuBusyUs(0) : undefined;
    const core1Before = pinning ? cpuBusyUs(1) : undefined;
    const wallBefore = performance.now();

    // 1. Uncontended.
    await ask(first, { cmd: "uncontended", iterations: WARMUP_ITERATIONS }, "uncontended");
    const cycleStatsBefore = await commandStats(admin);
    const cycles: UncontendedReply = await ask(
      first,
      { cmd: "uncontended", iterations: config.lockIterations },
      "uncontended",
    );
    const cycleDelta = statDelta(cycleStatsBefore, await commandStats(admin));
    const samples = cycles.samplesUs;

    // 2. Contended batches.
    const batch = () =>
      Promise.all(workers.map((w) => ask(w, { cmd: "batch", holdMs: config.lockHoldMs }, "batch")));
    for (let i = 0; i < WARMUP_BATCHES; i++) await batch();
    const batchStatsBefore = await commandStats(admin);
    const batches: BatchReply[][] = [];
    for (let i = 0; i < config.lockBatches; i++) batches.push(await batch());
    const batchDelta = statDelta(batchStatsBefore, await commandStats(admin));
    const contended = analyzeBatches(batches);

    const cpuAfter = await workersCpuUs(workers);
    const core0After = pinning ? cpuBusyUs(0) : undefined;
    const core1After = pinning ? cpuBusyUs(1) : undefined;
    const wallUs = (performance.now() - wallBefore) * 1000;
    const redisCpuAfter = await redisCpuUs(admin);
    const other = (before: number | undefined, after: number | undefined, own: number) =>
      before === undefined || after === undefined
        ? undefined
        : Math.max(0, after - before - own) / wallUs;
    const otherCore0 = other(core0Before, core0After, cpuAfter - cpuBefore);
    const otherCore1 = other(core1Before, core1After, redisCpuAfter - redisCpuBefore);
    const workerLog = workers
      .flatMap((w, i) =>
        w
          .log()
          .trim()
          .split("\n")
          .filter((line) => line !== "")
          .map((line) => `#${i}: ${line}`),
      )
      .slice(0, 5)
      .join("\n");
    const cycleCalls = [...cycleDelta.values()].reduce((a, b) => a + b, 0);
    return {
      round,
      variant,
      order,
      iterations: samples.length,
      cycleMedianUs: median(samples),
      cycleP99Us: quantile(samples, 0.99),
      cycleMeanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
      roundTripsPerCycle: cycles.sent / samples.length,
      redisCmdsPerCycle: cycleCalls / samples.length,
      cycleCommands: perUnit(cycleDelta, samples.length),
      waiters: workers.length,
      batches: batches.length,
      acquisitions: contended.acquisitions,
      failedAcquisitions: contended.failed,
      ...(contended.failureSample === undefined ? {} : { failureSample: contended.failureSample }),
      handoffs: contended.handoffs.length,
      handoffMedianMs: median(contended.handoffs),
      handoffP99Ms: quantile(contended.handoffs, 0.99),
      handoffMaxMs: quantile(contended.handoffs, 1),
      handoffSamplesMs: contended.handoffs,
      acquisitionsPerSec: contended.acquisitionsPerSec,
      roundTripsPerAcquisition: contended.roundTripsPerAcquisition,
      contendedCommands: perUnit(batchDelta, contended.acquisitions),
      holdMedianMs: contended.holdMedianMs,
      overlaps: contended.overlaps,
      releaseNotHeld: contended.releaseNotHeld + cycles.releaseNotHeld,
      ...(otherCore0 === undefined ? {} : { otherLoadOnWorkerCore: otherCore0 }),
      ...(otherCore1 === undefined ? {} : { otherLoadOnRedisCore: otherCore1 }),
      ...(workerLog === "" ? {} : { workerLog }),
      at: new Date().toISOString(),
    };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w.child)));
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const NUMERIC = [
  "cycleMedianUs",
  "cycleP99Us",
  "roundTripsPerCycle",
  "redisCmdsPerCycle",
  "handoffMedianMs",
  "handoffP99Ms",
  "handoffMaxMs",
  "acquisitionsPerSec",
  "roundTripsPerAcquisition",
  "holdMedianMs",
] as const;
type Numeric = (typeof NUMERIC)[number];

interface LockSummary {
  variant: LockVariant;
  rounds: number;
  /** Median over rounds of each figure. */
  median: Record<Numeric, number>;
  acquisitions: number;
  failedAcquisitions: number;
  overlaps: number;
  releaseNotHeld: number;
}

function summarizeLocks(runs: readonly LockRun[]): LockSummary[] {
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
function roundRatio(runs: readonly LockRun[], a: string, b: string, key: Numeric): number {
  const right = new Map(runs.filter((r) => r.variant === b).map((r) => [r.round, r]));
  const ratios: number[] = [];
  for (const run of runs.filter((r) => r.variant === a)) {
    const other = right.get(run.round);
    if (other !== undefined && other[key] !== 0) ratios.push(run[key] / other[key]);
  }
  return median(ratios);
}

function summaryTable(summaries: readonly LockSummary[]): string {
  const lines = [
    "| variant | acquire+release µs | p99 µs | round trips / acquire+release | hand-off ms | p99 ms | acquisitions/s | round trips / acquisition (contended) | failed acquisitions |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    const m = s.median;
    lines.push(
      `| ${s.variant} | ${fmt(m.cycleMedianUs, 0)} | ${fmt(m.cycleP99Us, 0)} | ${fmt(m.roundTripsPerCycle, 2)} | ` +
        `${fmt(m.handoffMedianMs, 2)} | ${fmt(m.handoffP99Ms, 2)} | ${fmtInt(m.acquisitionsPerSec)} | ` +
        `${fmt(m.roundTripsPerAcquisition, 2)} | ${s.failedAcquisitions} of ${s.acquisitions + s.failedAcquisitions} |`,
    );
  }
  return lines.join("\n");
}

function targetLines(summaries: readonly LockSummary[], runs: readonly LockRun[]): string[] {
  const find = (v: LockVariant) => summaries.find((s) => s.variant === v);
  const erk = find("erk-lock");
  const lines: string[] = [];
  if (erk === undefined) return ["- erk-lock not measured: no target checked"];
  const trips = runs.filter((r) => r.variant === "erk-lock").map((r) => r.roundTripsPerCycle);
  const worst = Math.max(...trips);
  lines.push(
    `- round trips per uncontended acquire+release (target ≤ ${MAX_ROUND_TRIPS}): median ${fmt(erk.median.roundTripsPerCycle, 2)}, ` +
      `worst round ${fmt(worst, 2)} → ${worst <= MAX_ROUND_TRIPS + 1e-9 ? "**met**" : "**NOT met**"}`,
  );
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

function comparisonLines(runs: readonly LockRun[]): string {
  return config.lockVariants
    .filter((v) => v !== "erk-lock" && runs.some((r) => r.variant === v))
    .map(
      (v) =>
        `- ${v} / erk-lock: hand-off ×${fmt(roundRatio(runs, v, "erk-lock", "handoffMedianMs"), 1)}, ` +
        `acquisitions/s ×${fmt(roundRatio(runs, v, "erk-lock", "acquisitionsPerSec"), 2)}, ` +
        `uncontended acquire+release ×${fmt(roundRatio(runs, v, "erk-lock", "cycleMedianUs"), 2)}`,
    )
    .join("\n");
}

function commandMix(runs: readonly LockRun[], pick: (r: LockRun) => Record<string, number>) {
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

function rawTable(runs: readonly LockRun[]): string {
  const lines = [
    "| round | order | variant | acq+rel µs | p99 µs | round trips | hand-offs | hand-off ms | p99 ms | max ms | acq/s | round trips / acq | hold ms | failed | overlaps | other load on CPU 0 / CPU 1 | ended |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.order} | ${r.variant} | ${fmt(r.cycleMedianUs, 0)} | ${fmt(r.cycleP99Us, 0)} | ${fmt(r.roundTripsPerCycle, 2)} | ` +
        `${r.handoffs} | ${fmt(r.handoffMedianMs, 3)} | ${fmt(r.handoffP99Ms, 2)} | ${fmt(r.handoffMaxMs, 1)} | ${fmtInt(r.acquisitionsPerSec)} | ` +
        `${fmt(r.roundTripsPerAcquisition, 2)} | ${fmt(r.holdMedianMs, 2)} | ${r.failedAcquisitions} | ${r.overlaps} | ` +
        `${percent(r.otherLoadOnWorkerCore)} / ${percent(r.otherLoadOnRedisCore)} | ${r.at} |`,
    );
  }
  return lines.join("\n");
}

function problemLines(
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
          (s.variant === "erk-lock"
            ? ""
            : "; the library's own limit, not counted as a benchmark failure"),
      );
      if (s.variant === "erk-lock") failing = true;
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

function noiseLine(runs: readonly LockRun[]): string {
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

const PLAN =
  `${config.lockIterations} sequential acquire+release, then ${config.lockBatches} batches of ` +
  `${config.lockWaiters} contending worker processes holding ${config.lockHoldMs} ms each`;

export const lockSuite: SuiteDefinition<LockRun> = {
  id: "lock",
  entries: config.lockVariants,
  plan: PLAN,
  runOnce,
  progress(run) {
    const parts = [
      `acquire+release ${fmt(run.cycleMedianUs, 0)} µs (p99 ${fmt(run.cycleP99Us, 0)}), ${fmt(run.roundTripsPerCycle, 2)} round trips`,
      `hand-off ${fmt(run.handoffMedianMs, 3)} ms (p99 ${fmt(run.handoffP99Ms, 2)}), ${fmtInt(run.acquisitionsPerSec)} acq/s, ${fmt(run.roundTripsPerAcquisition, 2)} round trips/acq`,
    ];
    if (run.otherLoadOnWorkerCore !== undefined)
      parts.push(
        `other load on CPU 0 ${percent(run.otherLoadOnWorkerCore)}, CPU 1 ${percent(run.otherLoadOnRedisCore)}`,
      );
    if (run.failedAcquisitions > 0)
      parts.push(`!! ${run.failedAcquisitions} acquisitions gave up: ${run.failureSample}`);
    if (run.overlaps > 0) parts.push(`!! ${run.overlaps} overlapping holders`);
    if (run.releaseNotHeld > 0) parts.push(`!! ${run.releaseNotHeld} releases not held`);
    if (run.workerLog !== undefined) parts.push(`!! worker log: ${run.workerLog.split("\n")[0]}`);
    return parts.join("  ");
  },
  report(runs, failures, env, startedAt) {
    const summaries = summarizeLocks(runs);
    const table = summaryTable(summaries);
    const targets = targetLines(summaries, runs);
    const comparisons = comparisonLines(runs);
    const problems = problemLines(summaries, runs, failures);
    const problemText =
      problems.lines.length > 0
        ? problems.lines.join("\n")
        : "None: every acquisition succeeded, no holders overlapped, every release found its lock held.";
    const noise = noiseLine(runs);
    const printed = [
      `\nLocks (${PLAN}):\n\n${table}\n`,
      `Targets:\n${targets.join("\n")}\n`,
      `Key comparisons (median of per-round ratios):\n${comparisons}\n`,
      problems.lines.length > 0 ? `Problems:\n${problemText}\n` : `${problemText}\n`,
      `Outside load: ${noise}\n`,
    ].join("\n");
    const markdown = [
      `# Lock benchmark ${startedAt.toISOString()}`,
      "",
      `${config.rounds} round(s). Per run: ${WARMUP_ITERATIONS} warm-up then ${config.lockIterations} sequential acquire+release cycles by one worker; ` +
        `then ${WARMUP_BATCHES} warm-up and ${config.lockBatches} measured batches in which ${config.lockWaiters} worker processes ` +
        `(one ioredis connection each) all ask for the one resource at once, and each holds it ${config.lockHoldMs} ms once ` +
        `(${config.lockWaiters - 1} hand-offs per batch). Lock TTL 10 s. ` +
        `Node ${env.node}, Redis ${env.redis}, ${env.cpus} × ${env.cpu}. Pinning: ${env.pinning}. ` +
        `Load average (1 min) when \`npm run bench\` started: ${env.loadAverage1m.toFixed(2)}. Code: ${env.git}.`,
      "",
      "Medians over rounds of each run's figure (the p99 columns: median of the per-run p99s). " +
        "Round trips: commands the worker's ioredis client sent (its `sendCommand` wrapped with a counter). " +
        "Hand-off: from one holder's release() call to the next holder's acquisition resolving, " +
        "both stamped with `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every process on the machine). " +
        "Acquisitions/s: 1 / mean time between consecutive acquisitions within a batch. " +
        "Round trips / acquisition (contended): every command the workers sent in the batches (attempts, releases) per successful acquisition.",
      "",
      table,
      "",
      "## Targets",
      "",
      targets.join("\n"),
      "",
      "## Key comparisons (median of per-round ratios)",
      "",
      comparisons,
      "",
      "## Problems",
      "",
      problemText,
      "",
      "## Outside load",
      "",
      noise,
      "",
      "## Redis calls per uncontended acquire+release by command (median, INFO commandstats)",
      "",
      commandMix(runs, (r) => r.cycleCommands),
      "",
      "## Redis calls per contended acquisition by command (median, INFO commandstats)",
      "",
      commandMix(runs, (r) => r.contendedCommands),
      "",
      "## Variants",
      "",
      config.lockVariants.map((v) => `- ${v}: ${LOCK_DESCRIPTIONS[v]}`).join("\n"),
      "",
      "## Raw runs",
      "",
      rawTable(runs),
      "",
    ].join("\n");
    return {
      printed,
      markdown,
      json: { summaries, targets, redlockTuned: REDLOCK_TUNED },
      failed: problems.failing,
    };
  },
};
