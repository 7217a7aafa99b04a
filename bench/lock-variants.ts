/**
 * The lock benchmark's variants and settings, shared by the runner (`lock-run.ts`,
 * `lock-processes.ts`, `lock-http-suite.ts`), the worker processes (`lock-worker.ts`) and the
 * HTTP server (`http-server.ts`).
 */
import { bare, twoEvalshaFloor } from "./peers.js";
import { peerScenario, type Scenario } from "./scenario.js";

/**
 * The HTTP rows: uncontended acquire + release as middleware around GET /api (a new resource per
 * request, released when the response is sent), against the two-EVALSHA floor and bare Express.
 */
export const LOCK_HTTP_VARIANTS = ["bare", "floor2", "erk-lock", "erk-lock-nr"] as const;

export type LockHttpVariant = (typeof LOCK_HTTP_VARIANTS)[number];

export const LOCK_HTTP_SCENARIOS: Record<LockHttpVariant, Scenario> = {
  bare: { label: "bare Express", peerBench: "a_bare", setup: bare },
  floor2: {
    label: "floor: two EVALSHA per request",
    peerBench: "f2_phys_two",
    setup: twoEvalshaFloor,
  },
  "erk-lock": {
    label: "requireLock(), uncontended",
    peerBench: "p_lock",
    setup: peerScenario("p_lock"),
  },
  "erk-lock-nr": {
    label: "requireLock(), uncontended, node-redis",
    peerBench: "p_lock on node-redis",
    client: "node-redis",
    setup: peerScenario("p_lock"),
  },
};

export const LOCK_HTTP_DESCRIPTIONS: Record<LockHttpVariant, string> = {
  bare: "Express 5, no middleware: the reference row",
  floor2:
    "one EVALSHA (INCR, PEXPIRE) before the handler and one when the response is sent: the floor of any two-round-trip middleware",
  "erk-lock":
    'this library\'s `requireLock({ redis, key: () => "k" + n++, ttlMs: 5000 })`: acquire, the handler, release on `finish` (autoExtend on)',
  "erk-lock-nr": "`erk-lock` on node-redis 6 `createClient({ url })`, default options (RESP3)",
};

export function isLockHttpVariant(value: string): value is LockHttpVariant {
  return (LOCK_HTTP_VARIANTS as readonly string[]).includes(value);
}

/**
 * Every worker variant, in the order the table lists them. `floor` (a minimal correct lock:
 * one script to acquire, one to release) runs the uncontended phase only: it is the reference
 * of that phase's ratios.
 */
export const LOCK_VARIANTS = [
  "floor",
  "erk-lock",
  "erk-lock-nr",
  "redlock",
  "redlock-tuned",
  "redis-semaphore",
] as const;

export type LockVariant = (typeof LOCK_VARIANTS)[number];

/** This library's variants: their failures fail the run (the peers' are their own limits). */
export const ERK_LOCK_VARIANTS: ReadonlySet<LockVariant> = new Set(["erk-lock", "erk-lock-nr"]);

/** The one resource every variant locks (each library adds its own key prefix). */
export const RESOURCE = "bench-resource";
/** TTL of every lock (ms): far longer than any hold, so no lock ever expires while held. */
export const TTL_MS = 10_000;
/** How long this library's waiters may wait (ms). */
export const WAIT_MS = 30_000;
/** Key prefix of this library's lock manager. */
export const ERK_PREFIX = "bench:lock:";

/**
 * node-redlock's retry settings in the `redlock-tuned` row: a retry every 5-15 ms (like
 * redis-semaphore's default 10 ms), for up to about 30 s (`WAIT_MS`). The `redlock` row passes
 * no settings: redlock 5's defaults (retryCount 10, retryDelay 200 ms, retryJitter 100 ms in
 * its code, so a retry 100-300 ms after each failed attempt, about 2 s in all).
 */
export const REDLOCK_TUNED = { retryCount: 3000, retryDelay: 10, retryJitter: 5 } as const;

/** What each variant measures, for the printed report. */
export const LOCK_DESCRIPTIONS: Record<LockVariant, string> = {
  floor:
    "two EVALSHA per acquire+release (`SET NX PX` of a per-acquisition token; compare-and-`DEL`): the uncontended floor of any Redis lock; no contended phase (it does not wait)",
  "erk-lock":
    'express-redis-kit `createLockManager({ redis, prefix: "bench:lock:" })`, `acquire(resource, { ttlMs: 10000, waitMs: 30000 })`: ' +
    "waiters woken by the release script's PUBLISH",
  "erk-lock-nr":
    "`erk-lock` with every worker on node-redis 6 `createClient({ url })` (RESP3, same-tick pipelining)",
  redlock:
    "node-redlock 5 (`redlock@5.0.0-beta.2`) on one client, `acquire([resource], 10000)` with its default settings " +
    "(retryCount 10, retryDelay 200 ms, retryJitter 100 ms: polls every 100-300 ms)",
  "redlock-tuned": `node-redlock 5 with retryCount ${REDLOCK_TUNED.retryCount}, retryDelay ${REDLOCK_TUNED.retryDelay} ms, retryJitter ${REDLOCK_TUNED.retryJitter} ms (polls every ${REDLOCK_TUNED.retryDelay - REDLOCK_TUNED.retryJitter}-${REDLOCK_TUNED.retryDelay + REDLOCK_TUNED.retryJitter} ms)`,
  "redis-semaphore":
    "redis-semaphore 5 `new Mutex(redis, resource, { lockTimeout: 10000 })` with its defaults otherwise " +
    "(acquireTimeout 10 s, retryInterval 10 ms: polls SET NX every 10 ms)",
};

export function isLockVariant(value: string): value is LockVariant {
  return (LOCK_VARIANTS as readonly string[]).includes(value);
}

// ---------------------------------------------------------------------------------------------
// The runner ↔ worker protocol: one JSON object per line. Replies start with REPLY_MARK, so
// anything else a library prints on stdout is kept as log, not parsed.

export const REPLY_MARK = "@@lock-worker ";

/** What the runner asks a worker to do. */
export type WorkerCommand =
  | { cmd: "cpu" }
  | { cmd: "uncontended"; iterations: number }
  | { cmd: "batch"; holdMs: number };

/** A worker's reply to `cpu`: its CPU time so far (user + system, µs). */
export interface CpuReply {
  type: "cpu";
  cpuUs: number;
}

/** A worker's reply to `uncontended`. */
export interface UncontendedReply {
  type: "uncontended";
  /** Each measured acquire+release, µs (0.1 µs resolution). */
  samplesUs: number[];
  /** Commands the worker's client sent during the measured iterations. */
  sent: number;
  /** The worker's CPU time (user + system) over the measured iterations, µs. */
  cpuUs: number;
  /** Iterations where release() said the lock was no longer held (must be 0). */
  releaseNotHeld: number;
}

/**
 * A worker's reply to `batch`: one acquire, a hold of `holdMs`, one release. Times are
 * `process.hrtime.bigint()` (CLOCK_MONOTONIC, one clock for every process on the machine), in
 * ns, as decimal strings.
 */
export interface BatchReply {
  type: "batch";
  requestedAt: string;
  /** Absent when the acquisition failed (`error`). */
  acquiredAt?: string;
  releaseCalledAt?: string;
  releasedAt?: string;
  /** Whether release() said the lock was still held (this library's release()). */
  releaseHeld?: boolean;
  /** Commands the worker's client sent for this acquisition (attempts and release). */
  sent: number;
  error?: string;
}

/** A worker's reply when a command failed as a whole. */
export interface ErrorReply {
  type: "error";
  message: string;
}

export type WorkerReply = CpuReply | UncontendedReply | BatchReply | ErrorReply;
