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
import { consoleLogger, type Logger } from "../core/logger.js";
import { positiveInt, rejectUnknown } from "../core/options.js";
import type { RedisClient } from "../core/scripts.js";
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

/** A message handler. Exceptions are caught, logged once per handler and counted. */
export type MessageHandler<T = unknown> = (message: Envelope<T>, channel: string) => void;

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
  /** @default console */
  logger?: Logger;
}

/** Counters since the instance was created. */
export interface PubSubStats {
  published: number;
  received: number;
  /** Messages dropped: oversized or not JSON envelopes. */
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
  /** Closes the subscriber connection (the publishing client is the caller's). */
  close(): Promise<void>;
  stats(): PubSubStats;
}

/** Moves raw payloads; the Redis one and the in-process one. */
export interface Transport {
  publish(channel: string, payload: string): Promise<number>;
  listen(channel: string): Promise<void>;
  unlisten(channel: string): Promise<void>;
  close(): Promise<void>;
}

/** The in-process bus shared by every memory-backed instance (like one Redis server). */
const localBus = new Set<(channel: string, payload: string) => void>();

class LocalTransport implements Transport {
  private readonly channels = new Set<string>();
  private readonly deliver = (channel: string, payload: string) => {
    if (this.channels.has(channel)) queueMicrotask(() => this.onMessage(channel, payload));
  };

  constructor(private readonly onMessage: (channel: string, payload: string) => void) {
    localBus.add(this.deliver);
  }

  async publish(channel: string, payload: string): Promise<number> {
    let receivers = 0;
    for (const deliver of localBus) {
      deliver(channel, payload);
      receivers++;
    }
    return receivers;
  }

  async listen(channel: string): Promise<void> {
    this.channels.add(channel);
  }

  async unlisten(channel: string): Promise<void> {
    this.channels.delete(channel);
  }

  async close(): Promise<void> {
    localBus.delete(this.deliver);
  }
}

/** Creates a pub/sub instance; see the module comment. */
export function createPubSub(options: PubSubOptions = {}): PubSub {
  const scope = "createPubSub";
  rejectUnknown(scope, options, ["redis", "maxMessageBytes", "onResubscribed", "logger"]);
  const maxBytes = positiveInt(scope, "maxMessageBytes", options.maxMessageBytes, 65_536);
  const logger = options.logger ?? consoleLogger;
  const origin = randomUUID();
  const handlers = new Map<string, Set<MessageHandler>>();
  const stats: PubSubStats = { published: 0, received: 0, dropped: 0, handlerErrors: 0 };
  const failing = new WeakSet<MessageHandler>();

  const onMessage = (channel: string, payload: string) => {
    const set = handlers.get(channel);
    if (set === undefined) return;
    const envelope = parseEnvelope(payload, maxBytes);
    if (envelope === undefined) {
      stats.dropped++;
      return;
    }
    stats.received++;
    for (const handler of set) {
      try {
        handler(envelope, channel);
      } catch (err) {
        stats.handlerErrors++;
        if (!failing.has(handler)) {
          failing.add(handler);
          logger.error(`pubsub: a handler on ${channel} threw: ${toError(err).message}`);
        }
      }
    }
  };
  const transport: Transport =
    options.redis === undefined
      ? new LocalTransport(onMessage)
      : new RedisTransport(options.redis, onMessage, logger, options.onResubscribed);

  return {
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
      stats.published++;
      return transport.publish(channel, payload);
    },
    async subscribe<T>(channel: string, handler: MessageHandler<T>) {
      let set = handlers.get(channel);
      if (set === undefined) {
        set = new Set();
        handlers.set(channel, set);
      }
      set.add(handler as MessageHandler);
      if (set.size === 1) {
        try {
          await transport.listen(channel);
        } catch (err) {
          // Not subscribed: forget the handler, so a retry subscribes again.
          set.delete(handler as MessageHandler);
          if (!set.size) handlers.delete(channel);
          throw err;
        }
      }
      let done = false;
      return async () => {
        if (done) return;
        done = true;
        const current = handlers.get(channel);
        current?.delete(handler as MessageHandler);
        if (current?.size === 0) {
          handlers.delete(channel);
          await transport.unlisten(channel);
        }
      };
    },
    async close() {
      handlers.clear();
      await transport.close();
    },
    stats: () => ({ ...stats }),
  };
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
