/**
 * Local rejections: once Redis has rejected a key, this process knows until when (the reply's
 * retry time) and rejects that key's further requests itself, with the result Redis would give,
 * shifted by the time elapsed: a flood costs no round trip per rejected request.
 *
 * Exactness: a local rejection only happens where Redis would also reject.
 * - `until` is counted from when the call was sent (Redis's clock read it later), so it never
 *   outlasts Redis's own answer; a request costing less than the rejected one asks Redis.
 * - A rejection on Redis leaves a flag (`P{K}:rej`, PX = its retry time). A refund that finds
 *   the flag, and every `reset(key)`, publish the key on `<prefix>lifted`: every process drops
 *   its entry. Ordinary refunds (no rejection outstanding) publish nothing.
 * - Entries are used only while the subscription is live; after a resubscribe (messages may have
 *   been missed) the table is cleared.
 * - The table is an LRU of `maxKeys` entries: a flood of distinct keys cannot grow memory.
 */
import { LRUCache } from "lru-cache";
import type { RedisDriver } from "../core/driver.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import { createPubSub, type PubSub } from "../pubsub/pubsub.js";
import type { StoreAnswer } from "./types.js";

/** One key's outstanding rejection. */
interface Entry {
  /** Redis's answer, as received. */
  answer: StoreAnswer;
  /** When the call was sent (this process's clock). */
  sentAt: number;
  /** Until when Redis rejects (sentAt + the answer's overall retry time). */
  until: number;
  /** The cost that was rejected: requests costing at least this much are rejected locally. */
  cost: number;
}

/** See the module comment. */
export class LocalRejections {
  private readonly table: LRUCache<string, Entry>;
  private readonly pubsub: PubSub;
  private readonly channel: string;
  private live = false;
  /** Rejections answered locally (no round trip). */
  answered = 0;

  constructor(redis: RedisDriver, prefix: string, maxKeys: number, logger: Logger) {
    this.table = new LRUCache({ max: maxKeys });
    this.channel = `${prefix}lifted`;
    this.pubsub = createPubSub(
      {
        redis: redis.client as RedisClient,
        logger,
        onResubscribed: () => this.table.clear(),
      },
      "rateLimit",
    );
    this.pubsub
      .subscribe<string>(this.channel, (message) => {
        if (typeof message.data === "string") this.table.delete(message.data);
      })
      .then(
        () => {
          this.live = true;
        },
        (err: unknown) =>
          logger.warn(
            `rateLimit: cannot subscribe to ${this.channel} (${(err as Error).message}); every rejection asks Redis`,
          ),
      );
  }

  /**
   * Redis's answer shifted to now, when `key` is still rejected for `cost`; else `undefined`
   * (and an expired entry is dropped).
   */
  check(key: string, cost: number): StoreAnswer | undefined {
    if (!this.live) return undefined;
    const entry = this.table.get(key);
    if (entry === undefined || cost < entry.cost) return undefined;
    const now = Date.now();
    if (now >= entry.until) {
      this.table.delete(key);
      return undefined;
    }
    this.answered++;
    return shift(entry.answer, now - entry.sentAt);
  }

  /** Records Redis's rejection of `key` for `cost`, sent at `sentAt`, lasting `retryAfterMs`. */
  remember(key: string, cost: number, sentAt: number, retryAfterMs: number, answer: StoreAnswer) {
    if (!this.live || retryAfterMs <= 0) return; // -1: never allowed at this cost
    this.table.set(key, { answer, sentAt, until: sentAt + retryAfterMs, cost });
  }

  /** Drops `key`'s entry here, and with `everywhere` in every process (a refund, a reset). */
  async lift(key: string, everywhere: boolean): Promise<void> {
    this.table.delete(key);
    if (everywhere) await this.pubsub.publish(this.channel, key, "lifted");
  }

  /** Entries held (for tests and stats). */
  get size(): number {
    return this.table.size;
  }

  async close(): Promise<void> {
    this.live = false;
    this.table.clear();
    await this.pubsub.close();
  }
}

/** `answer` as it reads `elapsed` ms later: waits and resets shortened, counts unchanged. */
function shift(answer: StoreAnswer, elapsed: number): StoreAnswer {
  return {
    blockedMs: Math.max(0, answer.blockedMs - elapsed),
    markers: answer.markers,
    policies: answer.policies.map((p) => ({
      ...p,
      resetMs: Math.max(0, p.resetMs - elapsed),
      retryAfterMs: p.retryAfterMs <= 0 ? p.retryAfterMs : Math.max(1, p.retryAfterMs - elapsed),
    })),
  };
}
