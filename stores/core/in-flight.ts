/**
 * Redis calls in flight behind a `BackendSwitch`, and their deadlines (and `withTimeout`, the
 * deadline of a single call).
 *
 * Every call of one switch has the same timeout, so deadlines fall in the order the calls were
 * sent: a FIFO with one timer, armed for the oldest unanswered call, replaces a timer per call
 * (a `setTimeout` + `clearTimeout` pair and its closures per request on the hot path).
 */
import { RedisTimeoutError, ReplicationTimeoutError, toError, unacknowledged } from "./errors.js";

/** Which backend served a call. */
export type Backend = "redis" | "memory";

/** What an `InFlight` reports to: the switch that sent it. */
export interface CallHost<S> {
  /** The feature's name, for errors. */
  readonly scope: string;
  /** The reply arrived in time. */
  answered(): void;
  /** The call failed or missed its deadline: the fallback's answer. */
  fellBack<T>(
    op: (store: S) => Promise<T>,
    err: Error,
  ): Promise<{ value: T; backend: Backend } | undefined>;
}

/** What the deadline queue holds. */
interface Timed {
  deadline: number;
  readonly done: boolean;
  failed(err: Error): void;
}

/** What a call needs until it is settled (dropped then: the queue may hold the call longer). */
interface Parts<S, T, R> {
  op: (store: S) => Promise<T>;
  map: (value: T, backend: Backend) => R;
  open: () => R;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

/**
 * One Redis call: settles its caller's promise once, by reply, error or deadline. The deadline
 * queue keeps an answered call until its timer next fires (up to `timeoutMs`), so the call
 * lets go of its closures (and the requests they capture) as soon as it is settled.
 */
export class InFlight<S, T, R> implements Timed {
  /** When the deadline passes (`performance.now()` ms); set by `Deadlines.add`. */
  deadline = 0;
  private parts: Parts<S, T, R> | undefined;

  constructor(
    private readonly host: CallHost<S>,
    op: Parts<S, T, R>["op"],
    map: Parts<S, T, R>["map"],
    open: Parts<S, T, R>["open"],
    resolve: Parts<S, T, R>["resolve"],
    reject: Parts<S, T, R>["reject"],
  ) {
    this.parts = { op, map, open, resolve, reject };
  }

  get done(): boolean {
    return this.parts === undefined;
  }

  answer(value: T): void {
    const parts = this.parts;
    if (parts === undefined) return; // the deadline passed first: the fallback answered
    this.parts = undefined;
    this.host.answered();
    try {
      parts.resolve(parts.map(value, "redis"));
    } catch (err) {
      parts.reject(err);
    }
  }

  failed(err: Error): void {
    const parts = this.parts;
    if (parts === undefined) return; // a late failure after the deadline: already answered
    this.parts = undefined;
    if (err instanceof ReplicationTimeoutError) {
      // Redis answered; only this write is not safe: refuse it, in every mode, and keep the
      // feature on Redis (its reads, and writes to other shards, are fine).
      this.host.answered();
      parts.reject(unacknowledged(this.host.scope, err));
      return;
    }
    this.host.fellBack(parts.op, err).then((a) => {
      try {
        parts.resolve(a === undefined ? parts.open() : parts.map(a.value, a.backend));
      } catch (mapErr) {
        parts.reject(mapErr);
      }
    }, parts.reject);
  }
}

/** The FIFO of calls in flight, with one timer for the oldest deadline. */
export class Deadlines {
  private queue: Timed[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  add(call: Timed): void {
    call.deadline = performance.now() + this.ms;
    this.queue.push(call);
    if (this.timer === undefined) this.arm();
  }

  /** Arms the timer for the oldest unanswered call, dropping answered ones before it. */
  private arm(): void {
    const { queue } = this;
    while (this.head < queue.length && queue[this.head]!.done) this.head++;
    if (this.head > 0) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
    const oldest = this.queue[0];
    if (oldest === undefined) return;
    const wait = Math.max(0, oldest.deadline - performance.now());
    this.timer = setTimeout(this.expire, Math.ceil(wait));
    this.timer.unref(); // the pending command holds the process; a deadline alone does not
  }

  /**
   * Fails every call whose deadline passed. Timers run before I/O in each turn of the event
   * loop: after a busy stretch the timer would fire while the reply already waits in the
   * socket, so the calls fail in a setImmediate, after this turn's I/O: a reply that did
   * arrive in time wins.
   */
  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    const late: Timed[] = [];
    const { queue } = this;
    while (this.head < queue.length) {
      const call = queue[this.head]!;
      if (!call.done) {
        if (call.deadline > now + 1) break; // +1: setTimeout's whole milliseconds
        late.push(call);
      }
      this.head++;
    }
    if (late.length > 0) {
      setImmediate(() => {
        for (const call of late) call.failed(new RedisTimeoutError(this.ms));
      });
    }
    this.arm();
  };
}

/**
 * Resolves or rejects like `promise`, or rejects with `RedisTimeoutError` after `ms` (and after
 * the I/O already received by then). A late rejection of `promise` is swallowed, so it never
 * becomes an unhandled rejection.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Timers run before I/O in each turn of the event loop: after a busy stretch, the timer
    // would fire while the reply already waits in the socket. setImmediate runs after this
    // turn's I/O, so a reply that did arrive in time wins.
    const timer = setTimeout(() => setImmediate(() => reject(new RedisTimeoutError(ms))), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(toError(err));
      },
    );
  });
}
