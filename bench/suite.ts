/**
 * What the runner (`run.ts`) needs from one benchmark: its measured units, how to run one, and
 * how to report the runs. The HTTP benchmarks measure `RunResult`s; the lock benchmark its own
 * kind of run.
 */
import type { Redis } from "ioredis";
import type { RunFailure, RunResult } from "./stats.js";

/** The machine and versions, recorded in every report. */
export interface BenchEnv {
  node: string;
  redis: string;
  cpu: string;
  cpus: number;
  pinning: string;
  /** 1-minute load average when `npm run bench` started. */
  loadAverage1m: number;
  /** The commit measured, and how many tracked files differed from it. */
  git: string;
  /** The tracked files that differed from the commit. */
  changedFiles: string[];
}

/** A report: printed, and written to `bench/results/<stamp>-<suite>.md` and `.json`. */
export interface SuiteReport {
  printed: string;
  markdown: string;
  json: Record<string, unknown>;
  /** Whether a run failed or a check did not hold (exit code 1). */
  failed: boolean;
}

/** What every measured run records, whatever the benchmark. */
export interface MeasuredRun {
  round: number;
  /** The entry measured (variant, or `variant/handler`). */
  variant: string;
  /** Position of the entry within its round (0 = first). */
  order: number;
  /** Earlier attempts of this run thrown away as noisy (`BENCH_RETRIES`). */
  retriedNoisy?: number;
}

/** One benchmark, whose runs are `R`s. */
export interface SuiteDefinition<R extends MeasuredRun = RunResult> {
  /** Names its results files, `<stamp>-<id>.md` (`lock-http` and `lock` make `--only lock`). */
  id: string;
  /** The measured units (variants, or `variant/handler`), in table order. */
  entries: readonly string[];
  /** What one run does, for the runner's first line (e.g. "5 s each (+1 s warm-up), 50 connections"). */
  plan: string;
  /** Runs `entry` once in fresh processes; throws when it cannot be measured. */
  runOnce(admin: Redis, redisUrl: string, entry: string, round: number, order: number): Promise<R>;
  /** The progress line's text after `[suite round/rounds] entry`: the run's figures and problems. */
  progress(run: R): string;
  /**
   * The largest share of a core (0-1) other processes used while `run` was measured; above
   * `MAX_OTHER_LOAD` the run is thrown away and run again (up to `BENCH_RETRIES` times).
   */
  noise?(run: R): number | undefined;
  report(
    runs: readonly R[],
    failures: readonly RunFailure[],
    env: BenchEnv,
    startedAt: Date,
  ): SuiteReport;
}
