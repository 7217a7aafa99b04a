/**
 * One measured run of one lock variant, and its record. A run starts `lockWaiters` worker
 * processes (`lock-processes.ts`) for the variant, then:
 *
 * 1. uncontended: worker 0 alone runs a warm-up loop, then `lockIterations` sequential
 *    acquire+release cycles on the resource, each timed, counting the commands its client sent
 *    and the worker's CPU time;
 * 2. contended: batches. In each, every worker is told at once to acquire the resource (waiting
 *    as the variant waits), hold it `lockHoldMs` and release it, once; so each batch has
 *    `lockWaiters` acquisitions and `lockWaiters - 1` hand-offs. A worker that has had its turn
 *    does not ask again within the batch: every hand-off goes to a waiter that was waiting.
 *    Two warm-up batches first (this library subscribes to release messages on first wait).
 *    The `floor` variant (which does not wait) runs the uncontended phase only.
 *
 * Hand-off latency is the time from one holder's `release()` call to the next holder's
 * acquisition resolving. Every worker stamps its steps with `process.hrtime.bigint()`,
 * CLOCK_MONOTONIC, which is one clock for every process on the machine, so stamps from
 * different workers compare directly.
 */
import type { Redis } from "ioredis";
import { config } from "./config.js";
import {
  ask,
  batch,
  startWorkers,
  stopWorkers,
  workerLog,
  workersCpuUs,
} from "./lock-processes.js";
import {
  type BatchReply,
  isLockVariant,
  type LockVariant,
  type UncontendedReply,
} from "./lock-variants.js";
import { commandStats, redisCpuUs, statDelta, watchCpu } from "./measure.js";
import { median, quantile } from "./stats.js";
import type { MeasuredRun } from "./suite.js";

/** Sequential acquire+release cycles of the uncontended warm-up. */
export const WARMUP_ITERATIONS = 200;
/** Contended batches run before the measured ones. */
export const WARMUP_BATCHES = 2;

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
  /** The worker's CPU time (user + system) per acquire+release, µs. */
  cpuUsPerCycle: number;
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

/** Runs lock variant `entry` once in fresh worker processes (see above) and records the run. */
export async function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<LockRun> {
  const variant = parseVariant(entry);
  await admin.flushall();
  const workers = await startWorkers(
    variant,
    redisUrl,
    variant === "floor" ? 1 : config.lockWaiters,
  );
  try {
    const first = workers[0]!;
    const cpuBefore = await workersCpuUs(workers);
    const redisCpuBefore = await redisCpuUs(admin);
    // CPU 0 is the workers', CPU 1 Redis's: what else ran there while the run was measured.
    const core0 = watchCpu(0);
    const core1 = watchCpu(1);

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

    // 2. Contended batches (not for the floor, which does not wait).
    const runBatch = () => batch(workers, config.lockHoldMs);
    const batchCount = variant === "floor" ? 0 : config.lockBatches;
    for (let i = 0; i < Math.min(batchCount, WARMUP_BATCHES); i++) await runBatch();
    const batchStatsBefore = await commandStats(admin);
    const batches: BatchReply[][] = [];
    for (let i = 0; i < batchCount; i++) batches.push(await runBatch());
    const batchDelta = statDelta(batchStatsBefore, await commandStats(admin));
    const contended = analyzeBatches(batches);

    const cpuAfter = await workersCpuUs(workers);
    const core0End = core0();
    const core1End = core1();
    const redisCpuAfter = await redisCpuUs(admin);
    const otherCore0 = core0End(cpuAfter - cpuBefore);
    const otherCore1 = core1End(redisCpuAfter - redisCpuBefore);
    const log = workerLog(workers);
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
      cpuUsPerCycle: cycles.cpuUs / samples.length,
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
      ...(log === "" ? {} : { workerLog: log }),
      at: new Date().toISOString(),
    };
  } finally {
    await stopWorkers(workers);
  }
}
