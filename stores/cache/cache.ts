/**
 * The response cache engine under `cacheResponse()`: two tiers (optional in-process first
 * tier, then Redis or the memory store), fill locks that coalesce misses across processes,
 * and purges. The messages that keep every process's first tier coherent are coherence.ts.
 *
 * Coalescing: the first request of a process to miss a key creates a local "flight" and asks
 * the store for the key's fill lock. Later requests of the process join the flight without a
 * Redis call and get the filler's entry handed over in memory. When another process holds the
 * lock, the flight waits for that process's `fill` message (pub/sub), not by polling; every
 * waiter has its own deadline.
 *
 * Purges and fills: every purge (local, or heard from another process) is recorded with a
 * sequence number per tag. A fill remembers the sequence when it began and is not stored when
 * one of its tags (or everything) was purged since.
 */

import { randomUUID } from "node:crypto";
import type { RedisDriver } from "../core/driver.js";
import { StoreUnavailableError, toError } from "../core/errors.js";
import { BackendSwitch, pingOf } from "../core/fallback.js";
import { withTimeout } from "../core/in-flight.js";
import type { Logger } from "../core/logger.js";
import { track, untrack } from "../core/registry.js";
import { Coherence } from "./coherence.js";
import { EntryKeys } from "./entry-keys.js";
import { Flights } from "./flights.js";
import { MemoryCacheStore } from "./memory.js";
import { PurgeLog } from "./purge-log.js";
import { RedisCacheStore } from "./redis.js";
import {
  type CacheStore,
  type Claim,
  DEFAULT_MEMORY_LIMITS,
  type FillClaim,
  type Lookup,
  type ResponseCacheStats,
  retentionMs,
  type StoredResponse,
} from "./types.js";

/** Settings of the engine (resolved by the middleware's option parsing). */
export interface ResponseCacheSettings {
  redis: RedisDriver | undefined;
  prefix: string;
  memory: { maxEntries: number; maxBytes: number } | undefined;
  timeoutMs: number;
  /** `"open"`: a failing Redis makes requests misses; `"closed"`: lookups reject (503). */
  onRedisError: "open" | "closed";
  recheckMs: number;
  coalesceWaitMs: number;
  logger: Logger;
}

/** See the module comment. */
export class ResponseCache {
  readonly counters = {
    hits: 0,
    misses: 0,
    stale: 0,
    bypasses: 0,
    coalesced: 0,
    validations: 0,
    notModified: 0,
    stored: 0,
  };
  private readonly store: BackendSwitch<CacheStore>;
  private readonly redisStore: RedisCacheStore | undefined;
  private readonly memoryStore: MemoryCacheStore | undefined;
  private readonly tier1: MemoryCacheStore | undefined;
  private readonly keys: EntryKeys;
  private readonly coherence: Coherence;
  private readonly flights: Flights;
  private readonly pending = new Set<Promise<boolean>>();
  /** Purges seen, so fills begun before one of them are not stored. */
  private readonly purges = new PurgeLog();

  constructor(private readonly settings: ResponseCacheSettings) {
    const { redis, prefix, memory, timeoutMs, logger } = settings;
    this.flights = new Flights(settings.coalesceWaitMs);
    this.keys = new EntryKeys(prefix);
    const limits = memory ?? DEFAULT_MEMORY_LIMITS;
    if (redis === undefined) this.memoryStore = new MemoryCacheStore(limits);
    else {
      this.redisStore = new RedisCacheStore(redis, prefix);
      if (memory !== undefined) this.tier1 = new MemoryCacheStore(limits);
    }
    this.store = new BackendSwitch<CacheStore>({
      scope: "cacheResponse",
      redis: this.redisStore,
      memory: this.memoryStore,
      onRedisError: settings.onRedisError,
      timeoutMs,
      recheckMs: settings.recheckMs,
      logger,
      // A lone slow reply under load answers that one call as a miss; three in a row mean
      // Redis is in trouble, and the process stops waiting on it for a second.
      failuresToDegrade: 3,
      ping: pingOf(redis),
    });
    const forgetAll = () => {
      this.purges.record("all");
      this.tier1?.clear();
    };
    this.coherence = new Coherence(
      {
        redis,
        prefix,
        timeoutMs,
        logger,
        readGeneration: async () => {
          try {
            const answer = await this.store.run((store) => store.generation());
            return answer?.backend === "redis" ? answer.value : undefined;
          } catch (err) {
            // onRedisError "closed": refused without Redis, as the other modes fall back.
            if (err instanceof StoreUnavailableError) return undefined;
            throw err;
          }
        },
      },
      {
        filled: (key, own) => {
          if (!own) this.tier1?.delete(key);
          this.flights.land(key);
        },
        purged: (tags) => {
          this.purges.record(tags);
          for (const tag of tags) void this.tier1?.purgeTag(tag);
        },
        purgedAll: forgetAll,
        // Messages may have been missed: the same as a purge of everything.
        resync: forgetAll,
      },
    );
    track("cache", prefix, this, redis);
  }

  /** See `Coherence.ready`: false (or resolving false) while the cache must be bypassed. */
  ready(): boolean | Promise<boolean> {
    return this.coherence.ready();
  }

  /** The entry key of a request: `prefix{hash}` with `parts` (and the generation) hashed. */
  keyFor(parts: readonly unknown[]): string {
    return this.keys.keyFor(this.coherence.generation, parts);
  }

  /**
   * Reads `key` from the first tier, then the store (only the store with `fromStore`: after
   * another request filled it). Resolves `undefined` on a miss or failure; with
   * `onRedisError: "closed"`, a failure rejects with `StoreUnavailableError`.
   */
  lookup(key: string, fromStore = false): Promise<Lookup | undefined> | Lookup | undefined {
    if (!fromStore) {
      const near = this.tier1?.getNow(key);
      if (near !== undefined) return near;
    }
    if (this.memoryStore !== undefined) return this.memoryStore.getNow(key); // memory only
    return this.store.runThen(
      (store) => store.get(key),
      (found) => {
        if (found !== undefined && this.tier1 !== undefined) {
          const { entry, storedAt, now } = found;
          const left = retentionMs(entry) - (now - storedAt);
          this.tier1.put(key, entry, storedAt, left, now - Date.now());
        }
        return found;
      },
      () => undefined, // open: a miss; closed rejects with StoreUnavailableError
    );
  }

  /**
   * Asks to fill `key` after a miss (`seen` undefined) or a stale read (`seen` = its storedAt).
   * `fill`: run the handler and call `fill()` or `abandon()`; `busy`: `wait()` (or, with
   * `willWait` false, serve something else); `filled`: look up again, from the store.
   */
  async claim(key: string, seen?: number, willWait = true): Promise<Claim> {
    if (!this.flights.start(key)) return { kind: "busy" };
    const token = randomUUID();
    const since = this.purges.now;
    const answer = await this.store
      .run((store) => store.lock(key, token, this.settings.coalesceWaitMs, seen))
      .catch(() => undefined);
    const result = answer?.value;
    if (result === "busy") {
      this.flights.remote(key, willWait);
      return { kind: "busy" };
    }
    if (result === "filled") {
      this.flights.land(key);
      return { kind: "filled" };
    }
    if (result === "vanished") return { kind: "fill", token, since, vanished: true };
    return { kind: "fill", token, since }; // taken, or Redis failing: fill without a lock
  }

  /** A claim without a lock, for `coalesce: false`. */
  unlockedClaim(): FillClaim {
    return { token: randomUUID(), since: this.purges.now };
  }

  /**
   * Waits (at most `coalesceWaitMs`) for the fill of `key` to land. Resolves with the entry
   * when this process filled it (handed over in memory, so a failing Redis does not make
   * every waiter run the handler), else with `undefined`: look it up.
   */
  wait(key: string): Promise<Lookup | undefined> {
    if (this.flights.has(key)) this.counters.coalesced++;
    return this.flights.wait(key);
  }

  /**
   * Stores the filler's entries (the response, and a Vary marker when it has one) unless one
   * of their tags was purged since the claim, releases the lock on `key`, and wakes the
   * waiters here and in other processes. Resolves true when stored.
   */
  fill(
    key: string,
    claim: FillClaim,
    items: readonly { key: string; entry: StoredResponse }[],
    ttlMs: number,
  ): Promise<boolean> {
    const pending = this.store_(key, claim, items, ttlMs);
    this.pending.add(pending);
    return pending.finally(() => this.pending.delete(pending));
  }

  /** Resolves when every fill in progress has been stored (or given up). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async store_(
    key: string,
    claim: FillClaim,
    items: readonly { key: string; entry: StoredResponse }[],
    ttlMs: number,
  ): Promise<boolean> {
    const tags = [...new Set(items.flatMap((item) => item.entry.tags))];
    let handover: Lookup | undefined;
    let stored = false;
    try {
      if (this.purges.purgedSince(claim.since, tags)) return false;
      const answer = await this.store.run((store) => {
        // One round trip: tags are sent first, so on one connection Redis applies them before
        // the entry, and a purge in between still finds the entry's key.
        const pairs = items.flatMap((item) => item.entry.tags.map((tag) => [tag, item.key]));
        const tagged = pairs.map(([tag, k]) => store.tag(tag!, k!, ttlMs));
        const sets = items.map((item) => {
          const own = item.key === key;
          return store.set(item.key, item.entry, ttlMs, own ? claim.token : undefined);
        });
        return Promise.all([...tagged, ...sets]).then(() => Promise.all(sets));
      });
      const storedAt = answer?.value;
      // Not stored when Redis failed: then only this process's waiters get it, in memory.
      const own = items.findIndex((item) => item.key === key && item.entry.vary === undefined);
      if (own !== -1 && !this.purges.purgedSince(claim.since, tags)) {
        const now = Date.now();
        handover = { entry: items[own]!.entry, storedAt: now, now };
      }
      if (storedAt === undefined || this.purges.purgedSince(claim.since, tags)) return false;
      this.counters.stored++;
      stored = true;
      const offset = answer!.backend === "redis" ? (storedAt[0] ?? 0) - Date.now() : 0;
      items.forEach((item, i) => {
        this.tier1?.put(item.key, item.entry, storedAt[i] ?? 0, ttlMs, offset);
      });
      return true;
    } finally {
      // The entry under `key` released the lock when it was stored.
      if (stored && items.some((item) => item.key === key)) this.release(key, handover);
      else this.abandon(key, claim.token, handover);
    }
  }

  /** Gives up a fill (not storable, aborted, failed): releases the lock and wakes waiters. */
  abandon(key: string, token: string, handover?: Lookup): Promise<boolean> {
    // Tracked like a fill: `idle()` resolves once the lock is released.
    const pending: Promise<boolean> = this.store
      .run((store) => store.unlock(key, token))
      .catch(() => {})
      .finally(() => this.release(key, handover))
      .then(() => false);
    this.pending.add(pending);
    void pending.finally(() => this.pending.delete(pending));
    return pending;
  }

  /**
   * Gives up a fill and deletes the entry under `key` (a revalidation whose answer may not be
   * stored: the old response must not be served again), in every process's first tier too.
   */
  discard(key: string, token: string): void {
    this.tier1?.delete(key);
    // Tracked like a fill: `idle()` resolves once the entry is gone and its lock released.
    const pending: Promise<boolean> = this.store
      .run((store) => store.remove(key))
      .catch(() => {})
      .then(() => this.abandon(key, token));
    this.pending.add(pending);
    void pending.finally(() => this.pending.delete(pending));
  }

  private release(key: string, handover?: Lookup): void {
    this.flights.land(key, handover);
    if (this.store.state === "redis") this.coherence.announceFill(key);
  }

  /** Deletes the entries tagged with any of `tags`, everywhere; resolves with how many. */
  async purgeTags(tags: readonly string[]): Promise<number> {
    this.purges.record(tags);
    let deleted = 0;
    for (const tag of tags) deleted += await this.direct((store) => store.purgeTag(tag));
    for (const tag of tags) await this.tier1?.purgeTag(tag);
    await this.coherence.announceTags(tags);
    return deleted;
  }

  /**
   * Like `purgeTags`, on a request path (an unsafe method's invalidation): a Redis failure is
   * a counted fallback, logged once per outage, not an error.
   */
  async invalidate(tags: readonly string[]): Promise<void> {
    this.purges.record(tags);
    for (const tag of tags) await this.tier1?.purgeTag(tag);
    const done = await this.store.run(async (store) => {
      for (const tag of tags) await store.purgeTag(tag);
      return true;
    });
    if (done?.backend === "redis") await this.coherence.announceTags(tags);
  }

  /** Retires every entry by bumping the generation; resolves with the new generation. */
  async purgeAll(): Promise<number> {
    this.purges.record("all");
    const generation = await this.direct((store) => store.bumpGeneration());
    this.coherence.raise(generation);
    this.tier1?.clear();
    await this.coherence.announceAll(generation);
    return generation;
  }

  /** Counters and state. */
  stats(): ResponseCacheStats {
    return {
      ...this.counters,
      errors: this.store.fallbacks,
      state: this.store.state,
      memoryEntries: (this.tier1 ?? this.memoryStore)?.size ?? 0,
    };
  }

  /** True while Redis is failing (responses are then not stored). */
  get degraded(): boolean {
    return this.store.state === "degraded";
  }

  /** Closes the subscriber connection. */
  async close(): Promise<void> {
    untrack(this);
    this.store.close();
    await this.coherence.close();
  }

  /** Runs an admin operation on the store itself: Redis failures reject. */
  private async direct<T>(op: (store: CacheStore) => Promise<T>): Promise<T> {
    if (this.redisStore === undefined) return op(this.memoryStore!);
    try {
      return await withTimeout(op(this.redisStore), Math.max(this.settings.timeoutMs, 5000));
    } catch (err) {
      throw new StoreUnavailableError(`cacheResponse: purge failed (${toError(err).message})`, {
        cause: err,
      });
    }
  }
}
