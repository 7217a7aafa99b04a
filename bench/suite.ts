/**
 * What the runner (`run.ts`) needs from one benchmark: its measured units, how to run one, and
 * how to report the runs.
 */
import type { Redis } from "ioredis";
import type { Suite } from "./config.js";
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
  /** The commit measured, and the tracked files that differed from it. */
  git: string;
}

/** A report: printed, and written to `bench/results/<stamp>-<suite>.md` and `.json`. */
export interface SuiteReport {
  printed: string;
  markdown: string;
  json: Record<string, unknown>;
  /** Whether a run failed or a check did not hold (exit code 1). */
  failed: boolean;
}

/** One benchmark. */
export interface SuiteDefinition {
  id: Suite;
  /** The measured units (variants, or `variant/handler`), in table order. */
  entries: readonly string[];
  /** Runs `entry` once in a fresh server; throws when it cannot be measured. */
  runOnce(
    admin: Redis,
    redisUrl: string,
    entry: string,
    round: number,
    order: number,
  ): Promise<RunResult>;
  /** The progress line's text after the common figures (problems of this run). */
  progress?(run: RunResult): string;
  report(
    runs: readonly RunResult[],
    failures: readonly RunFailure[],
    env: BenchEnv,
    startedAt: Date,
  ): SuiteReport;
}
