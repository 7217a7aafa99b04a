/**
 * The Redis transport of `createPubSub()`: publishes on the caller's client and subscribes on
 * a dedicated duplicate connection, created on the first subscription. ioredis subscribes
 * again after a reconnect; each `ready` after the first calls `onResubscribed`.
 */
import { isCluster } from "../core/client.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import type { Transport } from "./pubsub.js";

/** See the module comment. */
export class RedisTransport implements Transport {
  private subscriber: RedisClient | undefined;
  private readonly channels = new Set<string>();
  private down = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly onMessage: (channel: string, payload: string) => void,
    private readonly logger: Logger,
    private readonly onResubscribed: (() => void) | undefined,
  ) {}

  publish(channel: string, payload: string): Promise<number> {
    return this.redis.publish(channel, payload);
  }

  async listen(channel: string): Promise<void> {
    this.channels.add(channel);
    await this.connection().subscribe(channel);
  }

  async unlisten(channel: string): Promise<void> {
    this.channels.delete(channel);
    if (this.subscriber !== undefined) await this.subscriber.unsubscribe(channel);
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.channels.clear();
    if (subscriber !== undefined) subscriber.disconnect();
  }

  private connection(): RedisClient {
    if (this.subscriber !== undefined) return this.subscriber;
    // Subscriptions must survive a reconnect, so keep ioredis's queueing for this connection.
    const redis = this.redis;
    const subscriber: RedisClient = isCluster(redis) ? redis.duplicate() : redis.duplicate();
    this.subscriber = subscriber;
    // The subscriber lives as long as the caller's client: closing that closes this one too.
    this.redis.once("end", () => {
      if (this.subscriber === subscriber) void this.close();
    });
    subscriber.on("message", (channel: string, payload: string) =>
      this.onMessage(channel, payload),
    );
    subscriber.on("error", (err: Error) => {
      if (this.down) return;
      this.down = true;
      this.logger.warn(`pubsub: subscriber connection failed (${err.message}); reconnecting`);
    });
    let readyOnce = false;
    subscriber.on("ready", () => {
      if (readyOnce && this.down) this.logger.info("pubsub: subscriber reconnected");
      this.down = false;
      if (readyOnce) this.onResubscribed?.();
      readyOnce = true;
    });
    return subscriber;
  }
}
