/**
 * The lock benchmark: this library's `createLockManager()` (on ioredis, and on node-redis:
 * `erk-lock-nr`) against node-redlock (its default retry settings, and tuned to retry every
 * 5-15 ms) and redis-semaphore's `Mutex`, on ioredis, against the runner's redis-server. See
 * bench/README.md.
 *
 * What one run does and records is `lock-run.ts`; its worker processes, `lock-processes.ts`; the
 * report's parts, `lock-report.ts`. Here: the suite the runner (`run.ts`) runs, its progress
 * line and its report.
 */
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
import { type LockRun, runOnce, WARMUP_BATCHES, WARMUP_ITERATIONS } from "./lock-run.js";
import { LOCK_DESCRIPTIONS, REDLOCK_TUNED } from "./lock-variants.js";
import { machineLine, reportTexts } from "./report.js";
import { fmt, fmtInt, percent } from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

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
      `acquire+release ${fmt(run.cycleMedianUs, 0)} µs (p99 ${fmt(run.cycleP99Us, 0)}, CPU ${fmt(run.cpuUsPerCycle, 1)}), ${fmt(run.roundTripsPerCycle, 2)} round trips`,
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
    const table = summaryTable(summaries, runs);
    const targets = targetLines(summaries, runs);
    const comparisons = comparisonLines(runs);
    const problems = problemLines(summaries, runs, failures);
    const method =
      `${config.rounds} interleaved round(s). Per run: ${WARMUP_ITERATIONS} warm-up then ${config.lockIterations} sequential acquire+release cycles by one worker process pinned to CPU 0 (Redis on CPU 1); ` +
      `then ${WARMUP_BATCHES} warm-up and ${config.lockBatches} measured batches in which ${config.lockWaiters} worker processes ` +
      `(one connection each: ioredis, node-redis for erk-lock-nr) all ask for the one resource at once, and each holds it ${config.lockHoldMs} ms once ` +
      `(${config.lockWaiters - 1} hand-offs per batch). Lock TTL 10 s. Medians over rounds; ×floor: median of the per-round ratios to the floor's run of the same round. ` +
      machineLine(env);
    const texts = reportTexts({
      heading: `Locks between processes (${PLAN}; paste into README.md)`,
      title: `Lock benchmark ${startedAt.toISOString()}`,
      intro: [
        "Round trips: commands the worker's client sent (its `sendCommand` wrapped with a counter). " +
          "CPU µs / acquire+release: the worker's user + system CPU time over the measured cycles, per cycle. " +
          "Hand-off: from one holder's release() call to the next holder's acquisition resolving, " +
          "both stamped with `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every process on the machine). " +
          "Acquisitions/s: 1 / mean time between consecutive acquisitions within a batch. " +
          "Round trips / acquisition (contended): every command the workers sent in the batches (attempts, releases) per successful acquisition.",
      ],
      table: [`\`${config.commandLine}\``, "", method, "", table].join("\n"),
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
