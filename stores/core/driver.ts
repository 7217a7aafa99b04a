/**
 * The one seam between the features and a Redis client library.
 *
 * Features never call a client's own methods: they ask `driverOf(client)` for a `RedisDriver`
 * once, at construction, and use its few operations (scripts, plain commands, publish, a
 * dedicated subscriber, the masters for SCAN and INFO, readiness and error events). One
 * adapter per client family implements it: `driver-ioredis.ts` (ioredis 5/6 and iovalkey,
 * standalone, Sentinel-built or Cluster) and `driver-node-redis.ts` (node-redis 5/6
 * `createClient`, `createCluster`, `createSentinel`). Clients are recognised by shape, so the
 * client libraries stay optional peer dependencies that this package never imports.
 */
import { createHash } from "node:crypto";
import { observeScript } from "./registry.js";

/** An argument of a command or script. */
export type Arg = string | number | Buffer;

/** A Lua script as the drivers run it (see `defineScript()` in scripts.ts). */
export interface ScriptSource {
  /** A unique name (`erk_<name>`): the ioredis command name and the metrics label. */
  readonly command: string;
  readonly lua: string;
  /** SHA-1 of `lua`, for EVALSHA. */
  readonly sha: string;
}

/** Builds a `ScriptSource`. */
export function scriptSource(command: string, lua: string): ScriptSource {
  return { command, lua, sha: createHash("sha1").update(lua).digest("hex") };
}

/** One master (or the only server), for commands that must reach every master. */
export interface NodeHandle {
  /** `host:port`. */
  readonly name: string;
  /** Sends `args` (command name first) to this node only. */
  command(args: readonly Arg[]): Promise<unknown>;
}

/** What a subscriber connection reports to its owner. */
export interface SubscriberEvents {
  /** A message on `channel` (matched by `pattern` for a pattern subscription). */
  message(channel: string, payload: string, pattern?: string): void;
  /** The connection is ready: `again` is false the first time, true after each reconnect. */
  ready(again: boolean): void;
  /** The connection failed (it keeps retrying). */
  error(err: Error): void;
}

/** A dedicated connection in subscribe mode; the driver resubscribes it after a reconnect. */
export interface Subscriber {
  subscribe(channel: string): Promise<void>;
  psubscribe(pattern: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  punsubscribe(pattern: string): Promise<void>;
  /** Closes the connection (no reconnect). */
  close(): void;
}

/** Which library built the client. iovalkey is an ioredis fork and reports `ioredis`. */
export type ClientFamily = "ioredis" | "node-redis";

/** How the client reaches Redis. */
export type Topology = "standalone" | "cluster" | "sentinel";

/** The operations every feature needs of a Redis client; see the module comment. */
export interface RedisDriver {
  /** The client the application gave. */
  readonly client: object;
  readonly family: ClientFamily;
  readonly topology: Topology;
  /** True on a Redis Cluster (keys of one call must share a hash tag). */
  readonly isCluster: boolean;
  /** The prefix the client adds to every key (ioredis / node-redis `keyPrefix`), or "". */
  readonly keyPrefix: string;
  /**
   * True when the client sends a command again after a disconnect lost its reply (ioredis's
   * default `autoResendUnfulfilledCommands`): a script could then run twice.
   */
  readonly resendsUnanswered: boolean;
  /** True while the client is connected and ready for commands. */
  readonly ready: boolean;
  /** `host:port` of the server (the first master on a Cluster), for metrics labels. */
  readonly address: string;
  /** The server's flavour as INFO last said (`valkey` or `redis`), unknown until asked. */
  server: "redis" | "valkey" | undefined;
  /**
   * Runs `script` with `keys` as KEYS and `args` as ARGV: EVALSHA, and EVAL only when the
   * server answers NOSCRIPT (per node on a Cluster). Never retried on any other error. With
   * `buffers`, bulk replies are Buffers.
   */
  script(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    buffers?: boolean,
  ): Promise<unknown>;
  /** Runs command `name` on `keys` (all in one slot) and then `args`; routed by `keys[0]`. */
  command(name: string, keys: readonly string[], args?: readonly Arg[]): Promise<unknown>;
  /** Publishes `payload` on `channel`; resolves with the number of receivers. */
  publish(channel: string, payload: string): Promise<number>;
  /** Opens a dedicated subscriber connection that reports to `events`. */
  subscriber(events: SubscriberEvents): Subscriber;
  /** Every master (the one server on standalone, the current master on Sentinel). */
  masters(): Promise<NodeHandle[]>;
  /**
   * PINGs the server; on a Cluster, every master of the client's slot map, all of which must
   * answer (a shard whose master died fails it until its replica took over and the client
   * knows it; a node reconnecting counts as not answering). When one does not answer, the
   * client is asked to refresh its map (at most every 250 ms), so a later PING sees the
   * promotion without waiting for a command to stumble on it. One PING at a time per client.
   */
  ping(): Promise<void>;
  /** The master's `host:port` as Sentinel reports it now, or null when not on Sentinel. */
  sentinelMaster(): Promise<string | null>;
  /**
   * Runs `script` and `WAIT count timeoutMs` behind it as one pipeline on the connection of the
   * master that serves `keys[0]` (one round trip): the reply, and how many replicas
   * acknowledged it. On NOSCRIPT both go again, with EVAL. A failure of either rejects, and
   * nothing is ever sent again by the client behind the WAIT's back.
   */
  scriptAcknowledged(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    count: number,
    timeoutMs: number,
  ): Promise<[reply: unknown, acknowledged: number]>;
  /**
   * A driver on a new connection of its own (a `duplicate()` of the client, same options), and
   * the function that closes it. For calls that may block their connection (WAIT).
   */
  duplicate(): { driver: RedisDriver; close(): void };
  /** Subscribes to the client's `ready`, `error` and `end` events; returns an unsubscribe. */
  on(event: "ready" | "end", listener: () => void): () => void;
  on(event: "error", listener: (err: Error) => void): () => void;
}

/**
 * Makes a script reply the same whatever the protocol: under RESP3 Redis turns a Lua `true`
 * into a boolean and `false` into a boolean too, where RESP2 gives 1 and nil.
 */
export function normalizeReply(reply: unknown): unknown {
  if (reply === true) return 1;
  if (reply === false) return null;
  if (Array.isArray(reply)) {
    for (let i = 0; i < reply.length; i++) {
      const item = reply[i];
      if (item === true || item === false || Array.isArray(item)) reply[i] = normalizeReply(item);
    }
  }
  return reply;
}

/**
 * The two ends of one script call sent at `started` (`performance.now()`): each records the
 * call's latency for the metrics; `answered` also normalises the reply (`normalizeReply`).
 */
export function scriptEnds(command: string, started: number) {
  return {
    answered(reply: unknown): unknown {
      observeScript(command, started, false);
      return normalizeReply(reply);
    },
    failed(err: unknown): never {
      observeScript(command, started, true);
      throw err;
    },
  };
}
