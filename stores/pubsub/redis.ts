/**
 * The Redis transport of `createPubSub()`. Publishing goes through the driver (on a Cluster,
 * so that one channel's messages keep their order; see the drivers). Subscribing uses one
 * dedicated connection per client, shared (reference-counted per channel and per pattern) by
 * every pub/sub instance on that client, created on the first subscription and closed when the
 * last one is released or the caller's client ends. The driver resubscribes it after a
 * reconnect or failover; each `ready` after the first calls every `onResubscribed` hook.
 */
import type { RedisDriver, Subscriber } from "../core/driver.js";
import type { Logger } from "../core/logger.js";
import type { Deliver, Transport } from "./pubsub.js";

/** The subscriber connection of one client, and who listens on which channel. */
class SharedSubscriber {
  readonly connection: Subscriber;
  readonly channels = new Map<string, Set<Deliver>>();
  readonly patterns = new Map<string, Set<Deliver>>();
  readonly resubscribed = new Set<() => void>();
  private down = false;

  constructor(
    readonly redis: RedisDriver,
    logger: Logger,
    private readonly onEmpty: () => void,
  ) {
    this.connection = redis.subscriber({
      message: (channel, payload, pattern) => {
        const map = pattern === undefined ? this.channels : this.patterns;
        for (const deliver of map.get(pattern ?? channel) ?? []) deliver(channel, payload, pattern);
      },
      error: (err) => {
        if (this.down) return;
        this.down = true;
        logger.warn(`pubsub: subscriber connection failed (${err.message}); reconnecting`);
      },
      ready: (again) => {
        if (again && this.down) logger.info("pubsub: subscriber reconnected");
        this.down = false;
        if (again) for (const hook of this.resubscribed) hook();
      },
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
    this.connection.close();
    this.onEmpty();
  }
}

const shared = new WeakMap<RedisDriver, SharedSubscriber>();

function subscriberOf(redis: RedisDriver, logger: Logger): SharedSubscriber {
  let subscriber = shared.get(redis);
  if (subscriber === undefined) {
    const created = new SharedSubscriber(redis, logger, () => {
      if (shared.get(redis) === created) shared.delete(redis);
      off();
    });
    // The subscriber lives as long as the caller's client: closing that closes this one too.
    const off = redis.on("end", () => created.close());
    shared.set(redis, created);
    subscriber = created;
  }
  return subscriber;
}

/** See the module comment. */
export class RedisTransport implements Transport {
  /** What this instance listens to: `c:<channel>` and `p:<pattern>`. */
  private readonly listening = new Set<string>();
  private readonly deliver: Deliver;
  private readonly hook: () => void;

  constructor(
    private readonly redis: RedisDriver,
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
    return this.redis.publish(channel, payload);
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
