/**
 * A held lock: its expiry timer, loss (an aborted `signal`), extension and release. The
 * manager that acquired it is its `LockHost`: the store calls, counters and logger.
 */
import { LockLostError, toError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { fail, show } from "../core/options.js";
import type { Lock, LockManagerStats } from "./options.js";
import type { LockStore } from "./types.js";

/** Largest TTL accepted (ms): about 24 days, the range of Node's timers. */
export const MAX_TTL_MS = 2_147_483_647;

const SCOPE = "createLockManager";

/** What a held lock needs from its manager. */
export interface LockHost {
  readonly counters: LockManagerStats;
  readonly logger: Logger;
  /**
   * Runs a store call through the manager's `BackendSwitch`: within `timeoutMs`, and at once
   * with `StoreUnavailableError` while Redis is failing (except the probe). `op` is not called
   * when the call was refused without trying Redis.
   */
  call<T>(op: (store: LockStore) => Promise<T>): Promise<T>;
  /** Sends a clean-up call to the store without waiting for it; its errors are ignored. */
  background(op: (store: LockStore) => Promise<unknown>): void;
}

/** A duration option in ms within the range of Node's timers: positive, or 0 too with `zero`. */
export function duration(scope: string, name: string, value: unknown, zero = false): number {
  const min = zero ? 0 : 1;
  if (
    typeof value !== "number" ||
    !Number.isSafeInteger(value) ||
    value < min ||
    value > MAX_TTL_MS
  ) {
    const kind = zero ? "a non-negative integer" : "a positive integer";
    fail(scope, name, `${kind} of at most ${MAX_TTL_MS}`, value);
  }
  return value;
}

/** A TTL in ms (see `duration`). */
export function ttl(scope: string, value: unknown): number {
  return duration(scope, "ttlMs", value);
}

/** See the module comment. */
export class HeldLock implements Lock {
  /** Made on the first read of `signal` (most locks are released without anyone asking). */
  private controller: AbortController | undefined;
  /** Set when the lock is lost: the reason its signal aborts with. */
  private lostWith: LockLostError | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private released = false;
  expiresAt: number;

  constructor(
    readonly resource: string,
    readonly token: string,
    readonly fence: number,
    readonly ttlMs: number,
    private readonly manager: LockHost,
    readonly key: string,
    startedAt: number,
  ) {
    // From before the acquire call: never later than the expiry Redis applies.
    this.expiresAt = startedAt + ttlMs;
    this.armExpiry();
  }

  /** Why the lock is lost when its TTL runs out (`max-hold` once extension stopped on purpose). */
  expiryReason: "expired" | "max-hold" = "expired";

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.lostWith !== undefined) this.controller.abort(this.lostWith);
    }
    return this.controller.signal;
  }

  get lost(): boolean {
    return this.lostWith !== undefined;
  }

  get settled(): boolean {
    return this.released || this.lostWith !== undefined;
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(
      () => this.lose(this.expiryReason),
      Math.max(0, this.expiresAt - Date.now()),
    );
    this.expiryTimer.unref?.();
  }

  /** Marks the lock lost (once) and aborts its signal. */
  lose(reason: LockLostError["reason"], cause?: unknown): void {
    if (this.settled) return;
    clearTimeout(this.expiryTimer);
    this.manager.counters.lost++;
    this.lostWith = new LockLostError(this.resource, reason, { cause });
    this.controller?.abort(this.lostWith);
  }

  async extend(ms = this.ttlMs): Promise<boolean> {
    ttl("extend", ms);
    if (this.settled) return false;
    const started = Date.now();
    try {
      const ok = await this.manager.call((store) => store.extend(this.key, this.token, ms));
      if (this.settled) return false;
      if (!ok) {
        this.lose("taken");
        return false;
      }
      this.expiresAt = started + ms; // measured from before the call: never later than Redis's
      this.armExpiry();
      return true;
    } catch (err) {
      this.lose("extend-failed", err);
      return false;
    }
  }

  async release(): Promise<boolean> {
    if (this.released) return false;
    const wasLost = this.lost;
    this.released = true;
    clearTimeout(this.expiryTimer);
    let sent = false;
    try {
      const ok = await this.manager.call((store) => {
        sent = true;
        return store.release(this.key, this.token);
      });
      return ok && !wasLost;
    } catch (err) {
      // Refused without trying (Redis known to be failing): send it all the same, unwaited, so
      // the lock goes as soon as Redis takes it instead of holding others off for its TTL.
      if (!sent) this.manager.background((store) => store.release(this.key, this.token));
      this.manager.logger.warn(
        `${SCOPE}: releasing ${show(this.resource)} failed (${toError(err).message}); it expires on its own`,
      );
      return false;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

/**
 * Extends `lock` every ttl/3 (one extension in flight at a time) until it is released or lost,
 * or `maxHoldMs` passes (the last extension reaches exactly `maxHoldMs`, then the lock expires
 * and is reported lost with reason `max-hold`). Returns the stop function.
 */
export function extendEvery(lock: HeldLock, maxHoldMs: number | undefined): () => void {
  const startedAt = Date.now();
  const every = Math.max(1, Math.floor(lock.ttlMs / 3));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    if (stopped || lock.settled) return;
    const held = Date.now() - startedAt;
    if (maxHoldMs !== undefined && held >= maxHoldMs) {
      lock.expiryReason = "max-hold"; // stop extending: it expires and is reported lost
      return;
    }
    const ms = maxHoldMs === undefined ? lock.ttlMs : Math.min(lock.ttlMs, maxHoldMs - held);
    if (ms < lock.ttlMs) lock.expiryReason = "max-hold"; // the last extension: up to maxHoldMs
    try {
      await lock.extend(Math.max(1, ms)); // one extension in flight: the next waits for it
    } catch {
      // extend() reports failures as loss; nothing may escape a timer
    }
    if (!stopped && !lock.settled) timer = setTimeout(tick, every);
  };
  timer = setTimeout(tick, every);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
