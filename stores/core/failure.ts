/**
 * The failure model's one table: each feature's default deadline and `onRedisError`, the modes
 * it refuses and why, and `parseFailureOptions()`, which every feature's option parser calls.
 * The switch that applies them is `BackendSwitch` (fallback.ts).
 */
import { InvalidOptionError } from "./errors.js";
import { positiveInt, show } from "./options.js";

/**
 * What a feature does when Redis fails or is slower than `timeoutMs`: `"memory"` serves from the
 * in-process backend, `"open"` serves as if the feature were not there (no limit, no cache, no
 * lock), `"closed"` answers 503 with `Retry-After` (the primitives reject with
 * `StoreUnavailableError`).
 */
export type OnRedisError = "memory" | "open" | "closed";

/** The failure options every feature that talks to Redis takes. */
export interface FailureOptions {
  /** Longest wait for Redis per call; past it, `onRedisError` applies. */
  timeoutMs?: number;
  /** What to do when Redis fails or misses `timeoutMs`. */
  onRedisError?: OnRedisError;
  /**
   * While Redis is failing, one call per `recheckMs` probes it; the first success switches back.
   * @default 1000
   */
  recheckMs?: number;
}

/** `FailureOptions` resolved. */
export interface FailureConfig {
  timeoutMs: number;
  onRedisError: OnRedisError;
  recheckMs: number;
}

/** A feature's row of the failure table: its defaults, and the modes it offers with why not others. */
interface FailureRow {
  timeoutMs: number;
  onRedisError: OnRedisError;
  /** Modes not offered, each with the reason shown when one is asked for. */
  refused: Partial<Record<OnRedisError, string>>;
}

/**
 * The one table of failure defaults (the README's "When Redis fails" table says the same).
 * Deadlines: a check in front of every request waits little (its fallback is cheap); a lock or a
 * session is worth waiting for a bit longer, since its fallback is an error.
 */
export const FAILURE_DEFAULTS = {
  rateLimit: { timeoutMs: 100, onRedisError: "memory", refused: {} },
  cacheResponse: {
    timeoutMs: 50,
    onRedisError: "open",
    refused: {
      memory:
        "a per-process cache would keep serving entries purged or replaced in other processes; use `memory: { maxEntries }` for an in-process first tier",
    },
  },
  requireLock: {
    timeoutMs: 1000,
    onRedisError: "closed",
    refused: { memory: "a lock held in one process does not exclude the others" },
  },
  lockManager: {
    timeoutMs: 1000,
    onRedisError: "closed",
    refused: {
      memory: "a lock held in one process does not exclude the others",
      open: "acquire() cannot hand out a lock it does not hold; requireLock() offers open",
    },
  },
  sessions: {
    timeoutMs: 1000,
    onRedisError: "closed",
    refused: {
      memory: "a session kept in one process logs the user out on every other instance",
      open: "a session store cannot answer without its sessions",
    },
  },
  pubsub: {
    timeoutMs: 1000,
    onRedisError: "closed",
    refused: { memory: "in-process delivery reaches only this process's subscribers" },
  },
  health: { timeoutMs: 1000, onRedisError: "closed", refused: {} },
} as const satisfies Record<string, FailureRow>;

/** The probe interval while Redis is failing, for every feature. */
export const DEFAULT_RECHECK_MS = 1000;

/** Validates `timeoutMs`, `onRedisError` and `recheckMs` of `scope` against its row of the table. */
export function parseFailureOptions(
  scope: string,
  feature: keyof typeof FAILURE_DEFAULTS,
  options: FailureOptions,
): FailureConfig {
  const row: FailureRow = FAILURE_DEFAULTS[feature];
  const mode = options.onRedisError ?? row.onRedisError;
  if (mode !== "memory" && mode !== "open" && mode !== "closed") {
    const offered = (["memory", "open", "closed"] as const).filter((m) => !(m in row.refused));
    throw new InvalidOptionError(
      `${scope}: onRedisError must be one of ${offered.map((m) => `"${m}"`).join(", ")} (got ${show(mode)})`,
      "onRedisError",
    );
  }
  const refusal = row.refused[mode];
  if (refusal !== undefined) {
    throw new InvalidOptionError(
      `${scope}: onRedisError "${mode}" is not offered here: ${refusal}`,
      "onRedisError",
    );
  }
  return {
    timeoutMs: positiveInt(scope, "timeoutMs", options.timeoutMs, row.timeoutMs),
    onRedisError: mode,
    recheckMs: positiveInt(scope, "recheckMs", options.recheckMs, DEFAULT_RECHECK_MS),
  };
}
