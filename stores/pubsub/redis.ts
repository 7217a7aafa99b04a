/**
 * The Redis transport of `createPubSub()`. Publishing uses the caller's client (on a Cluster,
 * always through one master, so one publisher's messages keep their order). Subscribing
 * uses one dedicated duplicate connection per client, shared (reference-counted per channel
 * and per pattern) by every pub/sub instance on that client, created on the first
 * subscription and closed when the last one is released or the caller's client ends. ioredis subscribes again
 * after a reconnect; each `ready` after the first calls every `onResubscribed` hook.
 */
import type { Cluster, Redis } from "ioredis";
import { isCluster } from "../core/client.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import type { Deliver, Transport } from "./pubsub.js";

/** The subscriber connection of one client, and who listens on which channel. */
class SharedSubscriber {
  readonly connection: RedisClient;
  readonly channels = new Map<string, Set<Deliver>>();
  readonly patterns = new Map<string, Set<Deliver>>();
  readonly resubscribed = new Set<() => void>();
  private down = false;

  constructor(
    readonly redis: RedisClient,
    logger: Logger,
    private readonly onEmpty: () => void,
  ) {
    // Two branches for the type checker only: the two duplicate() signatures do not unify.
    this.connection = isCluster(redis) ? redis.duplicate() : redis.duplicate();
    this.connection.on("message", (channel: string, payload: string) => {
      for (const deliver of this.channels.get(channel) ?? []) deliver(channel, payload);
    });
    this.connection.on("pmessage", (pattern: string, channel: string, payload: string) => {
      for (const deliver of this.patterns.get(pattern) ?? []) deliver(channel, payload, pattern);
    });
    this.connection.on("error", (err: Error) => {
      if (this.down) return;
      this.down = true;
      logger.warn(`pubsub: subscriber connection failed (${err.message}); reconnecting`);
    });
    let readyOnce = false;
    this.connection.on("ready", () => {
      if (readyOnce && this.down) logger.info("pubsub: subscriber reconnected");
      this.down = false;
      if (readyOnce) for (const hook of this.resubscribed) hook();
      readyOnce = true;
    });
  }

  async add(name: string, pattern: boolean, deliver: Deliver): Promise<void> {
    const map = pattern ? this.patterns : this.channels;
    let set = map.get(name);
    if (set === undefined) {
      set = new Set();
      map.set(name, set);
    }
    set.add(deliver);
    // Subscribe each time: cheap when already subscribed, and retries a failed first attempt.
    try {
      if (pattern) await this.connection.psubscribe(name);
      else await this.connection.subscribe(name);
    } catch (err) {
      await this.remove(name, pattern, deliver); // not subscribed: no entry left behind
      throw err;
    }
  }

  async remove(name: string, pattern: boolean, deliver: Deliver): Promise<void> {
    const map = pattern ? this.patterns : this.channels;
    const set = map.get(name);
    if (set === undefined || !set.delete(deliver)) return;
    if (set.size > 0) return;
    map.delete(name);
    const done = pattern ? this.connection.punsubscribe(name) : this.connection.unsubscribe(name);
    await done.catch(() => {});
    if (this.channels.size === 0 && this.patterns.size === 0) this.close();
  }

  close(): void {
    this.channels.clear();
    this.patterns.clear();
    this.resubscribed.clear();
    this.connection.disconnect();
    this.onEmpty();
  }
}

const shared = new WeakMap<RedisClient, SharedSubscriber>();

function subscriberOf(redis: RedisClient, logger: Logger): SharedSubscriber {
  let subscriber = shared.get(redis);
  if (subscriber === undefined) {
    const created = new SharedSubscriber(redis, logger, () => {
      if (shared.get(redis) === created) shared.delete(redis);
      redis.off("end", onEnd);
    });
    // The subscriber lives as long as the caller's client: closing that closes this one too.
    const onEnd = () => created.close();
    redis.once("end", onEnd);
    shared.set(redis, created);
    subscriber = created;
  }
  return subscriber;
}

/** The master every publish of a Cluster client goes through (the same while it is known). */
function publisherOf(cluster: Cluster): Redis | undefined {
  let first: Redis | undefined;
  let firstName = "";
  for (const node of cluster.nodes("master")) {
    const name = `${node.options.host}:${node.options.port}`;
    if (first === undefined || name < firstName) {
      first = node;
      firstName = name;
    }
  }
  return first;
}

/** See the module comment. */
export class RedisTransport implements Transport {
  /** What this instance listens to: `c:<channel>` and `p:<pattern>`. */
  private readonly listening = new Set<string>();
  private readonly deliver: Deliver;
  private readonly hook: () => void;

  constructor(
    private readonly redis: RedisClient,
    onMessage: Deliver,
    private readonly logger: Logger,
    private readonly onResubscribed: (() => void) | undefined,
  ) {
    this.deliver = (channel, payload, pattern) => {
      const name = pattern === undefined ? `c:${channel}` : `p:${pattern}`;
      if (this.listening.has(name)) onMessage(channel, payload, pattern);
    };
    this.hook = () => this.onResubscribed?.();
  }

  publish(channel: string, payload: string): Promise<number> {
    if (!isCluster(this.redis)) return this.redis.publish(channel, payload);
    // A Cluster client sends a command without keys to a random node, and messages that
    // entered the bus at different nodes can overtake each other: publish on one node.
    // A master whose connection has ended: the Cluster client's own routing (and retries).
    // One still connecting queues the message, in order.
    const node = publisherOf(this.redis);
    return node === undefined || node.status === "end" || node.status === "close"
      ? this.redis.publish(channel, payload)
      : node.publish(channel, payload);
  }

  async listen(name: string, pattern: boolean): Promise<void> {
    const key = `${pattern ? "p" : "c"}:${name}`;
    this.listening.add(key);
    const subscriber = subscriberOf(this.redis, this.logger);
    subscriber.resubscribed.add(this.hook);
    try {
      await subscriber.add(name, pattern, this.deliver);
    } catch (err) {
      this.listening.delete(key);
      throw err;
    }
  }

  async unlisten(name: string, pattern: boolean): Promise<void> {
    this.listening.delete(`${pattern ? "p" : "c"}:${name}`);
    await shared.get(this.redis)?.remove(name, pattern, this.deliver);
  }

  async close(): Promise<void> {
    const subscriber = shared.get(this.redis);
    const names = [...this.listening];
    this.listening.clear();
    if (subscriber === undefined) return;
    subscriber.resubscribed.delete(this.hook);
    for (const key of names) {
      await subscriber.remove(key.slice(2), key[0] === "p", this.deliver).catch(() => {});
    }
  }
}
