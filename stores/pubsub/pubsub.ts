/**
 * `createPubSub()`: JSON messages over Redis pub/sub, or in process when no `redis` is given.
 *
 * Every message travels in an envelope `{ id, type, timestamp, origin, data }`. Delivery is
 * at-most-once: a message published while a subscriber is disconnected is not replayed, so
 * `onResubscribed` lets callers resync after a reconnect. A handler that throws never stops
 * other handlers; a payload over `maxMessageBytes` or not valid JSON is dropped and counted.
 */
import { randomUUID } from "node:crypto";
import { toError } from "../core/errors.js";
import { parseFailureOptions } from "../core/failure.js";
import { BackendSwitch, pingOf } from "../core/fallback.js";
import { consoleLogger, type Logger } from "../core/logger.js";
import { optionalRedis, positiveInt, rejectUnknown } from "../core/options.js";
import { track, untrack } from "../core/registry.js";
import type { RedisClient } from "../core/scripts.js";
import { LocalTransport } from "./local.js";
import { RedisTransport } from "./redis.js";

/** What a subscriber receives. */
export interface Envelope<T = unknown> {
  /** Unique message id. */
  id: string;
  /** Message type, e.g. `cache.purge`. */
  type: string;
  /** When it was published (ms since the epoch, publisher's clock). */
  timestamp: number;
  /** Id of the publishing `PubSub` instance (compare with `pubsub.origin` to skip your own). */
  origin: string;
  /** The published message. */
  data: T;
}

/**
 * A message handler. Exceptions (and rejections, for an async handler, which is not awaited)
 * are caught, logged once per handler and counted: they never reach other handlers.
 */
export type MessageHandler<T = unknown> = (
  message: Envelope<T>,
  channel: string,
) => void | Promise<void>;

/** Options of `createPubSub()`. */
export interface PubSubOptions {
  /** ioredis client to publish with; a duplicate subscribes. Omitted: in-process delivery. */
  redis?: RedisClient;
  /**
   * Largest payload published or accepted, in bytes.
   * @default 65536
   */
  maxMessageBytes?: number;
  /** Called after the subscriber reconnected and subscribed again (messages may have been missed). */
  onResubscribed?: () => void;
  /**
   * Longest wait for Redis per `publish()`; past it `onRedisError` applies.
   * @default 1000
   */
  timeoutMs?: number;
  /**
   * When a publish fails or misses `timeoutMs`: `"closed"` rejects with
   * `StoreUnavailableError`; `"open"` resolves 0 (no receiver: the message is dropped, counted
   * in `stats().dropped`). (`"memory"` is refused: in-process delivery would reach only this
   * process.)
   * @default "closed"
   */
  onRedisError?: "open" | "closed";
  /**
   * While Redis is failing, one publish per `recheckMs` tries it; the others fail at once.
   * @default 1000
   */
  recheckMs?: number;
  /** @default console */
  logger?: Logger;
}

/** Counters since the instance was created. */
export interface PubSubStats {
  published: number;
  received: number;
  /** Messages dropped: received oversized or not JSON envelopes, or not published (`open`). */
  dropped: number;
  /** Handler calls that threw. */
  handlerErrors: number;
}

/** See `createPubSub()`. */
export interface PubSub {
  /** This instance's id, set as `origin` on what it publishes. */
  readonly origin: string;
  /** Publishes `data` on `channel`; resolves with the number of receivers Redis reports. */
  publish(channel: string, data: unknown, type?: string): Promise<number>;
  /**
   * The payload `publish()` would send, for a Lua script to PUBLISH itself (one round trip
   * for a write and its notification).
   */
  encode(data: unknown, type?: string): string;
  /** Subscribes `handler` to `channel`; resolves once subscribed, with an unsubscribe function. */
  subscribe<T = unknown>(channel: string, handler: MessageHandler<T>): Promise<() => Promise<void>>;
  /**
   * Subscribes `handler` to every channel matching the Redis glob `pattern` (`*`, `?`, `[…]`);
   * the handler gets the actual channel. Resolves with an unsubscribe function.
   */
  psubscribe<T = unknown>(
    pattern: string,
    handler: MessageHandler<T>,
  ): Promise<() => Promise<void>>;
  /** Closes the subscriber connection (the publishing client is the caller's). */
  close(): Promise<void>;
  stats(): PubSubStats;
}

/** Delivers a raw payload; `pattern` is set for a pattern subscription's message. */
export type Deliver = (channel: string, payload: string, pattern?: string) => void;

/** Moves raw payloads; the Redis one and the in-process one. `pattern` marks a pattern. */
export interface Transport {
  publish(channel: string, payload: string): Promise<number>;
  listen(name: string, pattern: boolean): Promise<void>;
  unlisten(name: string, pattern: boolean): Promise<void>;
  close(): Promise<void>;
}

/** Creates a pub/sub instance; see the module comment. */
export function createPubSub(options: PubSubOptions = {}, owner?: string): PubSub {
  // A feature's own channel is named after it in logs and health (`cacheResponse pub/sub`).
  const scope = owner === undefined ? "createPubSub" : `${owner} pub/sub`;
  rejectUnknown(scope, options, [
    "redis",
    "maxMessageBytes",
    "onResubscribed",
    "timeoutMs",
    "onRedisError",
    "recheckMs",
    "logger",
  ]);
  const failure = parseFailureOptions(scope, "pubsub", options);
  const maxBytes = positiveInt(scope, "maxMessageBytes", options.maxMessageBytes, 65_536);
  const redis = optionalRedis(scope, "redis", options.redis);
  const logger = options.logger ?? consoleLogger;
  const origin = randomUUID();
  const channels = new Map<string, Set<MessageHandler>>();
  const patterns = new Map<string, Set<MessageHandler>>();
  const stats: PubSubStats = { published: 0, received: 0, dropped: 0, handlerErrors: 0 };
  const failing = new WeakSet<MessageHandler>();
  /** Subscriptions being made, by `c:<channel>` / `p:<pattern>`. */
  const pending = new Map<string, Promise<void>>();
  let closed = false;

  const failed = (handler: MessageHandler, channel: string, err: unknown) => {
    stats.handlerErrors++;
    if (!failing.has(handler)) {
      failing.add(handler);
      logger.error(`pubsub: a handler on ${channel} threw: ${toError(err).message}`);
    }
  };
  const onMessage: Deliver = (channel, payload, pattern) => {
    const set = pattern === undefined ? channels.get(channel) : patterns.get(pattern);
    if (set === undefined) return;
    const envelope = parseEnvelope(payload, maxBytes);
    if (envelope === undefined) {
      stats.dropped++;
      return;
    }
    stats.received++;
    for (const handler of set) {
      try {
        const result = handler(envelope, channel);
        if (result instanceof Promise) result.catch((err) => failed(handler, channel, err));
      } catch (err) {
        failed(handler, channel, err);
      }
    }
  };
  const transport: Transport =
    redis === undefined
      ? new LocalTransport(onMessage)
      : new RedisTransport(redis, onMessage, logger, options.onResubscribed);
  const publisher = new BackendSwitch<Transport>({
    scope,
    redis: redis === undefined ? undefined : transport,
    memory: redis === undefined ? transport : undefined,
    ...failure,
    logger,
    ping: pingOf(redis),
  });

  /** Adds a handler for a channel or pattern, listening on the first; returns its remover. */
  const add = async (
    map: Map<string, Set<MessageHandler>>,
    pattern: boolean,
    name: string,
    handler: MessageHandler,
  ): Promise<() => Promise<void>> => {
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError(`pubsub: ${pattern ? "pattern" : "channel"} must be a non-empty string`);
    }
    if (typeof handler !== "function") throw new TypeError("pubsub: handler must be a function");
    if (closed) throw new Error("pubsub: subscribe after close()");
    let set = map.get(name);
    if (set === undefined) {
      set = new Set();
      map.set(name, set);
    }
    set.add(handler);
    // Every caller waits for the one subscription in flight; when it fails, each caller's
    // handler is removed, so the next subscribe tries again.
    const key = `${pattern ? "p" : "c"}:${name}`;
    let listening = pending.get(key);
    if (set.size === 1 || listening !== undefined) {
      if (listening === undefined) {
        listening = transport.listen(name, pattern).finally(() => pending.delete(key));
        pending.set(key, listening);
      }
      try {
        await listening;
      } catch (err) {
        const current = map.get(name);
        current?.delete(handler);
        if (current?.size === 0) map.delete(name);
        throw err;
      }
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      const current = map.get(name);
      current?.delete(handler);
      if (current?.size === 0) {
        map.delete(name);
        await transport.unlisten(name, pattern);
      }
    };
  };

  const instance: PubSub = {
    origin,
    encode(data, type = "message") {
      const envelope: Envelope = { id: randomUUID(), type, timestamp: Date.now(), origin, data };
      return JSON.stringify(envelope);
    },
    async publish(channel, data, type = "message") {
      const payload = this.encode(data, type);
      if (Buffer.byteLength(payload) > maxBytes) {
        throw new RangeError(`pubsub: message on ${channel} exceeds maxMessageBytes (${maxBytes})`);
      }
      const answer = await publisher.run((t) => t.publish(channel, payload));
      if (answer === undefined) {
        stats.dropped++; // onRedisError: "open"
        return 0;
      }
      stats.published++;
      return answer.value;
    },
    subscribe: (channel, handler) => add(channels, false, channel, handler as MessageHandler),
    psubscribe: (pattern, handler) => add(patterns, true, pattern, handler as MessageHandler),
    async close() {
      closed = true;
      untrack(instance);
      publisher.close();
      channels.clear();
      patterns.clear();
      await transport.close();
    },
    stats: () => ({ ...stats }),
  };
  track("pubsub", "", instance, redis);
  return instance;
}

function parseEnvelope(payload: string, maxBytes: number): Envelope | undefined {
  if (payload.length > maxBytes) return undefined; // UTF-16 length ≤ bytes: a cheap first cut
  try {
    const value = JSON.parse(payload) as Partial<Envelope>;
    if (
      typeof value === "object" &&
      value !== null &&
      typeof value.id === "string" &&
      typeof value.type === "string" &&
      typeof value.origin === "string"
    ) {
      return value as Envelope;
    }
  } catch {}
  return undefined;
}
