/**
 * How the processes sharing a Redis cache stay coherent: one pub/sub channel per cache
 * (`<prefix>events`) carrying `fill` (a fill landed: drop the key from your first tier, wake
 * your waiters), `tags` (purged tags) and `all` (a new generation) messages, and the generation
 * every key is hashed with. A process serves from the cache only while it is subscribed and
 * knows the generation; after its subscriber reconnects (messages may have been missed) it
 * forgets what it may have missed and re-reads the generation first.
 */
import type { RedisDriver } from "../core/driver.js";
import { toError } from "../core/errors.js";
import { withTimeout } from "../core/in-flight.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import { createPubSub, type Envelope, type PubSub } from "../pubsub/pubsub.js";

type Message =
  | { kind: "fill"; key: string }
  | { kind: "tags"; tags: string[] }
  | { kind: "all"; generation: number };

/** Tags per purge message, so a message stays far below the pub/sub size cap. */
const TAGS_PER_MESSAGE = 100;

/** What another process did, for the cache to apply locally. */
export interface CoherenceHandlers {
  /** A fill of `key` landed (`own`: published by this process). */
  filled(key: string, own: boolean): void;
  /** Another process purged `tags`. */
  purged(tags: readonly string[]): void;
  /** Another process retired every entry (the generation is already raised). */
  purgedAll(): void;
  /** Messages may have been missed: forget the first tier, fills in flight are suspect. */
  resync(): void;
}

/** Settings of `Coherence`. */
export interface CoherenceSettings {
  /** Undefined: a memory-only cache, alone in its process, always ready. */
  redis: RedisDriver | undefined;
  prefix: string;
  timeoutMs: number;
  logger: Logger;
  /** Reads the generation from Redis; undefined when Redis did not answer. */
  readGeneration: () => Promise<number | undefined>;
}

/** See the module comment. */
export class Coherence {
  private readonly pubsub: PubSub | undefined;
  private readonly channel: string;
  private generationValue = 0;
  private known: boolean;
  private loading: Promise<boolean> | undefined;
  private lastLoadAttempt = 0;
  /** Raised by each resync: a generation read that started before it is read again. */
  private epoch = 0;
  private subscribed: Promise<boolean> | undefined;

  constructor(
    private readonly settings: CoherenceSettings,
    private readonly handlers: CoherenceHandlers,
  ) {
    this.channel = `${settings.prefix}events`;
    this.known = settings.redis === undefined;
    if (settings.redis !== undefined) {
      this.pubsub = createPubSub(
        {
          redis: settings.redis.client as RedisClient,
          logger: settings.logger,
          onResubscribed: () => this.resync(),
        },
        "cacheResponse",
      );
      this.subscribed = this.subscribe();
    }
  }

  /** The generation keys are hashed with. */
  get generation(): number {
    return this.generationValue;
  }

  /** Raises the generation (a purge of everything, here or heard). */
  raise(generation: number): void {
    this.generationValue = Math.max(this.generationValue, generation);
  }

  private subscribe(): Promise<boolean> {
    return this.pubsub!.subscribe<Message>(this.channel, (message) => this.onMessage(message)).then(
      () => true,
      (err: unknown) => {
        this.settings.logger.warn(
          `cacheResponse: cannot subscribe to ${this.channel} (${toError(err).message}); bypassing the cache until it can`,
        );
        return false;
      },
    );
  }

  /**
   * True when the cache can be used: subscribed to purge messages and the generation known.
   * On Redis both happen once (again after a failure); until then requests bypass the cache,
   * since a process that cannot hear purges, or does not know the generation `purgeAll()` set,
   * could serve purged entries. A failed subscription is tried again at most once a second; a
   * failed generation read at the next request: it goes through the cache's failure switch,
   * which bounds the calls Redis gets, and the first request after the switch is back on Redis
   * must not be bypassed for a second more (seen in the chaos suite's Sentinel rounds).
   */
  ready(): boolean | Promise<boolean> {
    if (this.known) return true;
    if (this.loading === undefined) {
      if (Date.now() - this.lastLoadAttempt < 1000) return false;
      this.lastLoadAttempt = Date.now();
      this.loading = this.load();
    }
    return this.loading;
  }

  private async load(): Promise<boolean> {
    try {
      const wait = Math.max(this.settings.timeoutMs * 20, 1000);
      let subscribed = await withTimeout(this.subscribed!, wait);
      if (!subscribed) {
        this.subscribed = this.subscribe();
        subscribed = await withTimeout(this.subscribed, wait);
      }
      if (!subscribed) return false;
      // A resync during the read (messages missed again) means the read may predate a purge:
      // read again, the requests waiting on this load with it (a few times at most).
      for (let attempt = 0; attempt < 3; attempt++) {
        const epoch = this.epoch;
        const generation = await this.settings.readGeneration();
        if (generation === undefined) {
          this.lastLoadAttempt = 0; // see ready()
          return false;
        }
        this.raise(generation);
        if (epoch === this.epoch) {
          this.known = true;
          return true;
        }
      }
      return false;
    } catch {
      return false;
    } finally {
      this.loading = undefined;
    }
  }

  /** Tells every process (this one too) that a fill of `key` landed. */
  announceFill(key: string): void {
    this.pubsub?.publish(this.channel, { kind: "fill", key }, "cache.fill").catch(() => {});
  }

  /** Tells the other processes that `tags` were purged. */
  async announceTags(tags: readonly string[]): Promise<void> {
    for (let i = 0; i < tags.length; i += TAGS_PER_MESSAGE) {
      await this.broadcast({ kind: "tags", tags: tags.slice(i, i + TAGS_PER_MESSAGE) });
    }
  }

  /** Tells the other processes that every entry was retired by `generation`. */
  announceAll(generation: number): Promise<void> {
    return this.broadcast({ kind: "all", generation });
  }

  private async broadcast(message: Message): Promise<void> {
    if (this.pubsub === undefined) return;
    await this.pubsub.publish(this.channel, message, `cache.${message.kind}`).catch((err) => {
      this.settings.logger.warn(
        `cacheResponse: purge done in Redis, but the message to other processes failed (${toError(err).message})`,
      );
    });
  }

  private onMessage(envelope: Envelope<Message>): void {
    const message = envelope.data;
    const own = envelope.origin === this.pubsub?.origin;
    if (message.kind === "fill") this.handlers.filled(message.key, own);
    else if (message.kind === "tags" && !own) this.handlers.purged(message.tags);
    else if (message.kind === "all" && !own) {
      this.raise(message.generation);
      this.handlers.purgedAll();
    }
  }

  /** After the subscriber reconnected: forget, and re-read the generation before serving. */
  private resync(): void {
    this.epoch++; // a load in flight reads again (see load())
    this.handlers.resync();
    this.known = false;
    this.lastLoadAttempt = 0;
  }

  /** Closes the subscriber connection. */
  close(): Promise<void> {
    return this.pubsub?.close() ?? Promise.resolve();
  }
}
