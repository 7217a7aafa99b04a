/**
 * Replica acknowledgement (the `replicas` option of locks and sessions).
 *
 * Redis replicates asynchronously: a write the master acknowledged can be missing on the
 * replica that takes over when the master dies. With `replicas: { count, timeoutMs }`, each
 * write that must survive a failover is followed, on the same connection, by
 * `WAIT count timeoutMs`, answered once `count` replicas have the write. Fewer in time rejects
 * with `ReplicationTimeoutError`.
 *
 * WAIT blocks its connection until it answers, so the acknowledged writes get a connection of
 * their own (`driver.duplicate()`): a lagging replica slows those writes, never the rate
 * limiter or the cache sharing the application's client.
 *
 * The write and its WAIT go as one pipeline (one round trip), with the script as a raw
 * EVALSHA: a client's own script command sends itself again after NOSCRIPT (or follows a
 * redirect) behind the WAIT's back, and the WAIT would then not cover it. Here a NOSCRIPT
 * sends both again (EVAL, WAIT), and any other error of either fails the call.
 */
import type { Arg, NodeHandle, RedisDriver, ScriptSource, Subscriber } from "./driver.js";
import { InvalidOptionError, ReplicationTimeoutError } from "./errors.js";
import { fail, positiveInt, rejectUnknown } from "./options.js";

/** The `replicas` option: how many replicas must acknowledge a write, and how long to wait. */
export interface ReplicasOptions {
  /** Replicas that must acknowledge each write (Redis `WAIT numreplicas`). At least 1. */
  count: number;
  /**
   * How long to wait for them, ms (Redis `WAIT timeout`); must be below the feature's
   * `timeoutMs`, which bounds the whole call.
   * @default 100
   */
  timeoutMs?: number;
}

/** `ReplicasOptions` resolved. */
export interface ReplicasConfig {
  count: number;
  timeoutMs: number;
}

/** The default `replicas.timeoutMs`. */
export const DEFAULT_REPLICAS_TIMEOUT_MS = 100;

/**
 * Validates `replicas` (`undefined` when not given). It needs Redis, and its wait must fit in
 * the call's deadline `callTimeoutMs`.
 */
export function parseReplicas(
  scope: string,
  value: unknown,
  redis: RedisDriver | undefined,
  callTimeoutMs: number,
): ReplicasConfig | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) {
    fail(scope, "replicas", "an object like { count: 1, timeoutMs: 100 }", value);
  }
  rejectUnknown(`${scope}: replicas`, value, ["count", "timeoutMs"]);
  const o = value as ReplicasOptions;
  if (o.count === undefined) {
    throw new InvalidOptionError(
      `${scope}: replicas.count is required (the replicas that must acknowledge each write)`,
      "replicas.count",
    );
  }
  const count = positiveInt(scope, "replicas.count", o.count);
  const timeoutMs = positiveInt(
    scope,
    "replicas.timeoutMs",
    o.timeoutMs,
    Math.max(1, Math.min(DEFAULT_REPLICAS_TIMEOUT_MS, callTimeoutMs - 1)),
  );
  if (redis === undefined) {
    throw new InvalidOptionError(
      `${scope}: replicas needs a Redis client (redis): the memory backend has no replicas`,
      "replicas",
    );
  }
  if (timeoutMs >= callTimeoutMs) {
    throw new InvalidOptionError(
      `${scope}: replicas.timeoutMs (${timeoutMs}) must be below timeoutMs (${callTimeoutMs}), which bounds the whole call`,
      "replicas.timeoutMs",
    );
  }
  return { count, timeoutMs };
}

/**
 * A driver whose scripts and commands resolve only once `count` replicas acknowledged them
 * (see the module comment), on a connection of its own. `close()` closes that connection.
 */
export class AcknowledgedDriver implements RedisDriver {
  private readonly base: RedisDriver;
  readonly close: () => void;

  constructor(
    main: RedisDriver,
    private readonly replicas: ReplicasConfig,
  ) {
    const { driver, close } = main.duplicate();
    this.base = driver;
    this.close = close;
  }

  /** `runAcknowledged` for every reply. */
  script(script: ScriptSource, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.runAcknowledged(script, keys, args);
  }

  /**
   * Runs `script` with its WAIT; rejects with `ReplicationTimeoutError` when fewer than `count`
   * replicas acknowledged and `wrote(reply)` says the script wrote something (a refused lock
   * grant writes nothing: its answer stands whatever the replicas say).
   */
  async runAcknowledged(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    wrote: (reply: unknown) => boolean = () => true,
  ): Promise<unknown> {
    const { count, timeoutMs } = this.replicas;
    const [reply, acks] = await this.base.scriptAcknowledged(script, keys, args, count, timeoutMs);
    if (acks < count && wrote(reply)) throw new ReplicationTimeoutError(acks, count, timeoutMs);
    return reply;
  }

  /** Not offered: a WAIT sent apart from its write could run on a new connection and cover nothing. */
  command(): Promise<unknown> {
    return Promise.reject(new Error("AcknowledgedDriver runs scripts only"));
  }

  /** This connection without acknowledgement: for what must follow its writes in order (a release). */
  get plain(): RedisDriver {
    return this.base;
  }

  // Everything else is the connection's own.
  get client(): object {
    return this.base.client;
  }
  get family() {
    return this.base.family;
  }
  get topology() {
    return this.base.topology;
  }
  get isCluster(): boolean {
    return this.base.isCluster;
  }
  get keyPrefix(): string {
    return this.base.keyPrefix;
  }
  get resendsUnanswered(): boolean {
    return this.base.resendsUnanswered;
  }
  get ready(): boolean {
    return this.base.ready;
  }
  get address(): string {
    return this.base.address;
  }
  get server() {
    return this.base.server;
  }
  set server(value) {
    this.base.server = value;
  }
  scriptAcknowledged(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    count: number,
    timeoutMs: number,
  ): Promise<[unknown, number]> {
    return this.base.scriptAcknowledged(script, keys, args, count, timeoutMs);
  }
  duplicate() {
    return this.base.duplicate();
  }
  publish(channel: string, payload: string): Promise<number> {
    return this.base.publish(channel, payload);
  }
  subscriber(events: Parameters<RedisDriver["subscriber"]>[0]): Subscriber {
    return this.base.subscriber(events);
  }
  masters(): Promise<NodeHandle[]> {
    return this.base.masters();
  }
  ping(): Promise<void> {
    return this.base.ping();
  }
  sentinelMaster(): Promise<string | null> {
    return this.base.sentinelMaster();
  }
  on(event: "ready" | "end" | "error", listener: (err: Error) => void): () => void {
    return this.base.on(event as "error", listener);
  }
}
