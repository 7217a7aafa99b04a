/**
 * The Redis-or-memory switch every feature sits behind.
 *
 * Each call goes to Redis with a deadline. When Redis fails or misses the deadline the switch
 * turns degraded (logged once) and, depending on the failure mode, serves from the in-process
 * memory backend (`"memory"`), answers `undefined` (`"open"`: the feature lets the request
 * through) or throws `StoreUnavailableError` (`"closed"`). While degraded, no request waits on
 * Redis: one request at a time, at most every `recheckMs`, probes it, and the switch PINGs it
 * by itself every `PING_EVERY_MS` (on a Cluster, every master); the first success turns the
 * switch back to Redis (logged once).
 */

import {
  ReplicationTimeoutError,
  StoreUnavailableError,
  toError,
  unacknowledged,
} from "./errors.js";
import type { OnRedisError } from "./failure.js";
import { registerSwitch, unregisterSwitch } from "./feature-states.js";
import { type Backend, type CallHost, Deadlines, InFlight, withTimeout } from "./in-flight.js";
import type { Logger } from "./logger.js";
import { PING_EVERY_MS, type Ping } from "./pinger.js";

export { type FeatureState, featureStates } from "./feature-states.js";
export type { Backend } from "./in-flight.js";
export { pingOf } from "./pinger.js";

/** Options of `BackendSwitch`. */
export interface BackendSwitchOptions<S> {
  /** Feature name used in log lines and errors, e.g. `rateLimit`. */
  scope: string;
  /** The Redis-backed store, or `undefined` for memory only. */
  redis: S | undefined;
  /** The in-process store, needed only when `onRedisError` is `"memory"` or there is no Redis. */
  memory: S | undefined;
  onRedisError: OnRedisError;
  timeoutMs: number;
  recheckMs: number;
  logger: Logger;
  /**
   * Consecutive failures before the switch turns degraded; the failures before that are
   * answered by the fallback one by one (a lone slow reply under load does not divert the
   * whole process for `recheckMs`).
   * @default 1
   */
  failuresToDegrade?: number;
  /**
   * A cheap Redis call (PING) the switch makes by itself every `PING_EVERY_MS` (or `recheckMs`
   * when shorter) while degraded, so a feature that gets no traffic (an instance a load
   * balancer took out of rotation because its health said 503) still finds its way back to
   * Redis, and one that does is back a PING or two after a failover's new master answers.
   * With `onReady`, the switch also probes as soon as the client says it is ready again
   * (reconnected, to a new master after a Sentinel failover).
   */
  ping?: Ping;
}

const answer = <T>(value: T, backend: Backend) => ({ value, backend });
const open = () => undefined;

/** True for an error Redis replied with (as opposed to a connection failure or a timeout). */
function isReplyError(err: Error | undefined): boolean {
  return err !== undefined && /^(ReplyError|ErrorReply|SimpleError|BlobError)$/.test(err.name);
}

/** Routes calls to Redis or memory; see the module comment. */
export class BackendSwitch<S> implements CallHost<S> {
  private degraded = false;
  private probing = false;
  private nextProbeAt = 0;
  private nextPingAt = 0;
  /** A PING answered after a reply error, and no real call has tried Redis since. */
  private untriedSinceReply = false;
  private lastError: Error | undefined;
  private failures = 0;
  private closed = false;
  private pinging = false;
  private pingTimer: NodeJS.Timeout | undefined;
  /** While degraded: stops listening for the client's `ready`. */
  private offReady: (() => void) | undefined;
  /** Calls answered by the fallback (memory, open or closed) since creation. */
  fallbacks = 0;
  private readonly deadlines: Deadlines;

  constructor(private readonly options: BackendSwitchOptions<S>) {
    if (
      options.memory === undefined &&
      (options.redis === undefined || options.onRedisError === "memory")
    ) {
      throw new TypeError(
        `${options.scope}: a BackendSwitch without Redis or in mode memory needs a memory store`,
      );
    }
    this.deadlines = new Deadlines(options.timeoutMs);
    registerSwitch(this);
  }

  /** The feature's name (`options.scope`). */
  get scope(): string {
    return this.options.scope;
  }

  /** Forgets this switch for `featureStates()` (the feature's `close()`). */
  close(): void {
    this.closed = true;
    clearTimeout(this.pingTimer);
    this.offReady?.();
    unregisterSwitch(this);
  }

  /** The failure mode this switch applies. */
  get onRedisError(): OnRedisError {
    return this.options.onRedisError;
  }

  /** The last Redis failure's message while degraded. */
  get lastErrorMessage(): string | undefined {
    return this.degraded ? this.lastError?.message : undefined;
  }

  /** `"redis"`, `"memory"` (no Redis given) or `"degraded"` (Redis failing, fallback in use). */
  get state(): "redis" | "memory" | "degraded" {
    if (this.options.redis === undefined) return "memory";
    return this.degraded ? "degraded" : "redis";
  }

  /**
   * Runs `op` on the backend currently in charge. Resolves `undefined` when Redis failed and
   * the mode is `"open"`; rejects with `StoreUnavailableError` when the mode is `"closed"`.
   */
  run<T>(op: (store: S) => Promise<T>): Promise<{ value: T; backend: Backend } | undefined> {
    return this.runThen(op, answer, open);
  }

  /**
   * `run()` with the answer mapped in the same continuation, for hot paths (no wrapper object,
   * no extra promise): `map(value, backend)`, or `open()` when the `"open"` mode answers.
   */
  runThen<T, R>(
    op: (store: S) => Promise<T>,
    map: (value: T, backend: Backend) => R,
    open: () => R,
  ): Promise<R> {
    const { redis } = this.options;
    if (redis === undefined || this.degraded) {
      return this.runSlow(op).then((a) => (a === undefined ? open() : map(a.value, a.backend)));
    }
    // The hot path: Redis healthy. No async frame, no timer of its own (the deadline queue
    // holds one timer for every call in flight), one continuation.
    let pending: Promise<T>;
    try {
      pending = op(redis);
    } catch (err) {
      pending = Promise.reject(err); // a client that throws instead of rejecting
    }
    return new Promise<R>((resolve, reject) => {
      const call = new InFlight(this, op, map, open, resolve, reject);
      this.deadlines.add(call);
      pending.then(
        (value) => call.answer(value),
        (err: unknown) => call.failed(toError(err)),
      );
    });
  }

  /** A Redis call's reply arrived in time. */
  answered(): void {
    this.failures = 0;
  }

  /** A Redis call failed or missed its deadline: count it, then answer from the fallback. */
  fellBack<T>(op: (store: S) => Promise<T>, err: Error) {
    this.fail(err);
    return this.fallback(op);
  }

  /** Memory only, or degraded: fall back, or probe Redis once per `recheckMs`. */
  private async runSlow<T>(
    op: (store: S) => Promise<T>,
  ): Promise<{ value: T; backend: Backend } | undefined> {
    const { redis, memory } = this.options;
    if (redis === undefined) return { value: await op(memory as S), backend: "memory" };
    if (this.probing || Date.now() < this.nextProbeAt) return this.fallback(op);
    this.probing = true;
    this.untriedSinceReply = false; // this call decides
    try {
      const value = await withTimeout(op(redis), this.options.timeoutMs);
      this.recover();
      return { value, backend: "redis" };
    } catch (err) {
      if (err instanceof ReplicationTimeoutError) {
        this.recover(); // Redis answered: see InFlight.failed
        throw unacknowledged(this.options.scope, err);
      }
      this.lastError = toError(err);
      this.nextProbeAt = Date.now() + this.options.recheckMs;
      return this.fallback(op);
    } finally {
      this.probing = false;
    }
  }

  /**
   * Runs `op` on Redis only, within the timeout, without falling back: true when it succeeded,
   * false when Redis is degraded, absent or failed (a failure also turns the switch degraded).
   */
  async tryRedis(op: (store: S) => Promise<unknown>): Promise<boolean> {
    const { redis } = this.options;
    if (redis === undefined || this.degraded) return false;
    try {
      await withTimeout(op(redis), this.options.timeoutMs);
      this.failures = 0;
      return true;
    } catch (err) {
      this.fail(toError(err));
      return false;
    }
  }

  private recover(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.failures = 0;
    this.untriedSinceReply = false;
    clearTimeout(this.pingTimer);
    this.offReady?.();
    this.offReady = undefined;
    this.options.logger.info(`${this.options.scope}: Redis answers again; back on Redis`);
  }

  /**
   * While degraded, PINGs Redis when the next probe is due (held weakly: a dropped feature is
   * freed). At most one PING is outstanding: one a dead connection queued is not repeated.
   */
  private schedulePing(busy = false): void {
    if (this.options.ping === undefined || this.closed) return;
    clearTimeout(this.pingTimer);
    const ref = new WeakRef(this);
    // A probe or an earlier PING still out: look again a PING interval later. Else when the
    // next PING is due (+5 ms: timers may fire a little early).
    const due = busy ? this.pingEveryMs : Math.max(0, this.nextPingAt - Date.now()) + 5;
    this.pingTimer = setTimeout(() => void ref.deref()?.pingNow(), due);
    this.pingTimer.unref();
  }

  private async pingNow(): Promise<void> {
    const ping = this.options.ping;
    if (!this.degraded || this.closed || ping === undefined) return;
    if (this.probing || this.pinging) return this.schedulePing(true);
    if (Date.now() < this.nextPingAt) return this.schedulePing();
    this.probing = true;
    this.pinging = true;
    const sent = Promise.resolve().then(() => ping());
    const settled = () => {
      this.pinging = false; // the PING itself came back (not only its deadline)
    };
    sent.then(settled, settled);
    try {
      await withTimeout(sent, this.options.timeoutMs);
      // A PING proves the connection, not the feature's commands: after a reply error (OOM,
      // READONLY, NOPERM…) the next real call is let through to decide. When none came by the
      // next PING (no traffic: an instance out of rotation), that PING switches back; a real
      // call turns it degraded again if the error stays.
      if (isReplyError(this.lastError) && !this.untriedSinceReply) {
        this.nextProbeAt = 0;
        this.untriedSinceReply = true;
        this.nextPingAt = Date.now() + this.options.recheckMs;
        this.schedulePing();
      } else this.recover();
    } catch (err) {
      this.lastError = toError(err);
      this.nextPingAt = Date.now() + this.pingEveryMs;
      this.schedulePing();
    } finally {
      this.probing = false;
    }
  }

  private get pingEveryMs(): number {
    return Math.min(this.options.recheckMs, PING_EVERY_MS);
  }

  /** When Redis is next tried: the next probe, or a probe in flight's deadline. */
  private retryAfterMs(): number {
    const untilProbe = this.nextProbeAt - Date.now();
    if (untilProbe > 0) return untilProbe;
    return this.probing ? this.options.timeoutMs : this.options.recheckMs;
  }

  private readyAgain(): void {
    if (!this.degraded || this.closed) return;
    // A PING still outstanding went to the connection that failed: a new one, on the one now
    // ready, is the evidence (without this the probe waited a whole recheckMs behind it).
    this.pinging = false;
    this.nextProbeAt = 0;
    this.nextPingAt = 0;
    this.schedulePing();
  }

  private fail(err: Error): void {
    this.lastError = err;
    this.failures++;
    if (this.failures >= (this.options.failuresToDegrade ?? 1)) this.turnDegraded(err);
  }

  private turnDegraded(err: Error): void {
    this.lastError = err;
    if (this.degraded) return; // a late failure of a call already in flight: no new schedule
    this.nextProbeAt = Date.now() + this.options.recheckMs;
    this.nextPingAt = Date.now() + this.pingEveryMs;
    this.degraded = true;
    this.schedulePing();
    // The client ready again (reconnected, or on a new master): probe now (held weakly).
    const ref = new WeakRef(this);
    this.offReady = this.options.ping?.onReady?.(() => ref.deref()?.readyAgain());
    const what = {
      memory: "using the in-process memory backend",
      open: "letting requests through (onRedisError: open)",
      closed: "rejecting requests (onRedisError: closed)",
    }[this.options.onRedisError];
    this.options.logger.warn(
      `${this.options.scope}: Redis unavailable (${err.message}); ${what} until it answers again`,
    );
  }

  private async fallback<T>(
    op: (store: S) => Promise<T>,
  ): Promise<{ value: T; backend: Backend } | undefined> {
    this.fallbacks++;
    if (this.options.onRedisError === "memory") {
      return { value: await op(this.options.memory as S), backend: "memory" };
    }
    // Below `failuresToDegrade`, a lone failure answers its own call as "open" would (a miss),
    // in every mode: only a switch that has turned degraded rejects.
    if (this.options.onRedisError === "open" || !this.degraded) return undefined;
    throw new StoreUnavailableError(
      `${this.options.scope}: Redis unavailable (${this.lastError?.message ?? "unknown error"})`,
      { cause: this.lastError, retryAfterMs: this.retryAfterMs() },
    );
  }
}
