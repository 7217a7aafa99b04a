/**
 * The Redis transport of `createPubSub()`. Publishing uses the caller's client. Subscribing
 * uses one dedicated duplicate connection per client, shared (reference-counted per channel)
 * by every pub/sub instance on that client, created on the first subscription and closed
 * when the last channel is released or the caller's client ends. ioredis subscribes again
 * after a reconnect; each `ready` after the first calls every `onResubscribed` hook.
 */
import { isCluster } from "../core/client.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import type { Transport } from "./pubsub.js";

type Deliver = (channel: string, payload: string) => void;

/** The subscriber connection of one client, and who listens on which channel. */
class SharedSubscriber {
  readonly connection: RedisClient;
  readonly channels = new Map<string, Set<Deliver>>();
  readonly resubscribed = new Set<() => void>();
  private down = false;

  constructor(
    readonly redis: RedisClient,
    logger: Logger,
    private readonly onEmpty: () => void,
  ) {
    this.connection = isCluster(redis) ? redis.duplicate() : redis.duplicate();
    this.connection.on("message", (channel: string, payload: string) => {
      for (const deliver of this.channels.get(channel) ?? []) deliver(channel, payload);
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

  async add(channel: string, deliver: Deliver): Promise<void> {
    let set = this.channels.get(channel);
    if (set === undefined) {
      set = new Set();
      this.channels.set(channel, set);
    }
    set.add(deliver);
    // Subscribe each time: cheap when already subscribed, and retries a failed first attempt.
    await this.connection.subscribe(channel);
  }

  async remove(channel: string, deliver: Deliver): Promise<void> {
    const set = this.channels.get(channel);
    if (set === undefined || !set.delete(deliver)) return;
    if (set.size > 0) return;
    this.channels.delete(channel);
    await this.connection.unsubscribe(channel).catch(() => {});
    if (this.channels.size === 0) this.close();
  }

  close(): void {
    this.channels.clear();
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

/** See the module comment. */
export class RedisTransport implements Transport {
  private readonly listening = new Set<string>();
  private readonly deliver: Deliver;

  constructor(
    private readonly redis: RedisClient,
    onMessage: Deliver,
    private readonly logger: Logger,
    private readonly onResubscribed: (() => void) | undefined,
  ) {
    this.deliver = (channel, payload) => {
      if (this.listening.has(channel)) onMessage(channel, payload);
    };
    this.hook = () => this.onResubscribed?.();
  }

  private readonly hook: () => void;

  publish(channel: string, payload: string): Promise<number> {
    return this.redis.publish(channel, payload);
  }

  async listen(channel: string): Promise<void> {
    this.listening.add(channel);
    const subscriber = subscriberOf(this.redis, this.logger);
    subscriber.resubscribed.add(this.hook);
    await subscriber.add(channel, this.deliver);
  }

  async unlisten(channel: string): Promise<void> {
    this.listening.delete(channel);
    await shared.get(this.redis)?.remove(channel, this.deliver);
  }

  async close(): Promise<void> {
    const subscriber = shared.get(this.redis);
    const channels = [...this.listening];
    this.listening.clear();
    if (subscriber === undefined) return;
    subscriber.resubscribed.delete(this.hook);
    for (const channel of channels) await subscriber.remove(channel, this.deliver).catch(() => {});
  }
}
