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
  commandMix,
  comparisonLines,
  noiseLine,
  problemLines,
  rawTable,
  summarizeLocks,
  summaryTable,
  targetLines,
} from "./lock-report.js";
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
import { machineLine, reportTexts } from "./report.js";
import { fmt, fmtInt, median, percent, quantile } from "./stats.js";
import type { MeasuredRun, SuiteDefinition } from "./suite.js";

/** Sequential acquire+release cycles of the uncontended warm-up. */
const WARMUP_ITERATIONS = 200;
/** Contended batches run before the measured ones. */
const WARMUP_BATCHES = 2;
/** Longest wait for a worker's answer to one command (ms). */
const ANSWER_TIMEOUT_MS = 120_000;

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
    const texts = reportTexts({
      heading: `Locks (${PLAN})`,
      title: `Lock benchmark ${startedAt.toISOString()}`,
      intro: [
        `${config.rounds} round(s). Per run: ${WARMUP_ITERATIONS} warm-up then ${config.lockIterations} sequential acquire+release cycles by one worker; ` +
          `then ${WARMUP_BATCHES} warm-up and ${config.lockBatches} measured batches in which ${config.lockWaiters} worker processes ` +
          `(one ioredis connection each) all ask for the one resource at once, and each holds it ${config.lockHoldMs} ms once ` +
          `(${config.lockWaiters - 1} hand-offs per batch). Lock TTL 10 s. ` +
          machineLine(env),
        "Medians over rounds of each run's figure (the p99 columns: median of the per-run p99s). " +
          "Round trips: commands the worker's ioredis client sent (its `sendCommand` wrapped with a counter). " +
          "Hand-off: from one holder's release() call to the next holder's acquisition resolving, " +
          "both stamped with `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every process on the machine). " +
          "Acquisitions/s: 1 / mean time between consecutive acquisitions within a batch. " +
          "Round trips / acquisition (contended): every command the workers sent in the batches (attempts, releases) per successful acquisition.",
      ],
      table,
      targets,
      comparisons,
      problems: problems.lines,
      noProblems:
        "None: every acquisition succeeded, no holders overlapped, every release found its lock held.",
      noise: noiseLine(runs),
      mixes: [
        {
          heading:
            "Redis calls per uncontended acquire+release by command (median, INFO commandstats)",
          text: commandMix(runs, (r) => r.cycleCommands),
        },
        {
          heading: "Redis calls per contended acquisition by command (median, INFO commandstats)",
          text: commandMix(runs, (r) => r.contendedCommands),
        },
      ],
      variants: [config.lockVariants.map((v) => `- ${v}: ${LOCK_DESCRIPTIONS[v]}`).join("\n")],
      raw: rawTable(runs),
    });
    return {
      ...texts,
      json: { summaries, targets, redlockTuned: REDLOCK_TUNED },
      failed: problems.failing,
    };
  },
};
