/**
 * The lock benchmark's worker processes: one run's `lockWaiters` `lock-worker.ts` processes for
 * one variant (pinned to CPU 0, each with its own connection), the commands the runner
 * sends them and their replies (the protocol in `lock-variants.ts`), and their log.
 */
import { config } from "./config.js";
import {
  type BatchReply,
  type CpuReply,
  type LockVariant,
  REPLY_MARK,
  type WorkerCommand,
  type WorkerReply,
} from "./lock-variants.js";
import { type LineWorker, startLineWorker, stopChild } from "./processes.js";

/** Longest wait for a worker's answer to one command (ms). */
const ANSWER_TIMEOUT_MS = 120_000;

/** Sends `command` to `worker` and returns its reply, which must be of `type`. */
export async function ask<T extends WorkerReply["type"]>(
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

/** Starts `count` workers for `variant`; if one fails, stops the others and throws. */
export async function startWorkers(
  variant: LockVariant,
  redisUrl: string,
  count = config.lockWaiters,
): Promise<LineWorker[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startLineWorker(`${variant}#${i}`, "lock-worker.ts", [variant, redisUrl], REPLY_MARK, 0),
    ),
  );
  const workers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    await stopWorkers(workers);
    throw failed.reason;
  }
  return workers;
}

/** Stops every worker (SIGTERM, then SIGKILL). */
export async function stopWorkers(workers: readonly LineWorker[]): Promise<void> {
  await Promise.all(workers.map((w) => stopChild(w.child)));
}

/** Total CPU time of `workers` so far, µs. */
export async function workersCpuUs(workers: readonly LineWorker[]): Promise<number> {
  const replies: CpuReply[] = await Promise.all(workers.map((w) => ask(w, { cmd: "cpu" }, "cpu")));
  return replies.reduce((sum, r) => sum + r.cpuUs, 0);
}

/**
 * One contended batch: tells every worker at once to acquire the resource, hold it `holdMs` and
 * release it, once; resolves with every worker's reply.
 */
export function batch(workers: readonly LineWorker[], holdMs: number): Promise<BatchReply[]> {
  return Promise.all(workers.map((w) => ask(w, { cmd: "batch", holdMs }, "batch")));
}

/** The first 5 lines the workers logged (library warnings), each marked `#<worker>: `. */
export function workerLog(workers: readonly LineWorker[]): string {
  return workers
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
}
