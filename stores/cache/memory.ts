/**
 * The in-process cache store: the backend when no `redis` is given, and the optional first
 * tier in front of Redis. Bounded by entry count and total bytes (lru-cache), per-entry TTL.
 */
import { LRUCache } from "lru-cache";
import type { CacheStore, LockAnswer, Lookup, StoredResponse } from "./types.js";

interface Held {
  entry: StoredResponse;
  /** On the clock of the store it came from. */
  storedAt: number;
  /** That clock minus this process's clock, when the entry was read (0 when stored here). */
  offset: number;
}

/** Limits of a memory store. */
export interface MemoryCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/** See the module comment. */
export class MemoryCacheStore implements CacheStore {
  private readonly entries: LRUCache<string, Held>;
  private readonly locks = new Map<string, { token: string; until: number }>();
  /** Tag → keys of the entries carrying it (kept by `put` and `dispose`, so purges never scan). */
  private readonly tags = new Map<string, Set<string>>();
  private gen = 0;
  private clock = 0;

  constructor(limits: MemoryCacheLimits) {
    this.entries = new LRUCache<string, Held>({
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      sizeCalculation: (held) => Math.max(1, held.entry.body.length + 256),
      // Keep the tag indexes as small as the entries: forget an entry's tags when it goes.
      dispose: (held, key, reason) => {
        if (reason === "set") return; // replaced: the new entry's tags are being recorded
        for (const tag of held.entry.tags) {
          const keys = this.tags.get(tag);
          keys?.delete(key);
          if (keys?.size === 0) this.tags.delete(tag);
        }
      },
    });
  }

  async get(key: string): Promise<Lookup | undefined> {
    return this.getNow(key);
  }

  /** `get` without a promise, for the first tier's hot path. */
  getNow(key: string): Lookup | undefined {
    const held = this.entries.get(key);
    if (held === undefined) return undefined;
    return { entry: held.entry, storedAt: held.storedAt, now: Date.now() + held.offset };
  }

  async set(key: string, entry: StoredResponse, ttlMs: number, lockToken?: string) {
    // Strictly increasing, so `lock()` can tell a re-store from the entry a caller saw.
    this.clock = Math.max(Date.now(), this.clock + 1);
    this.put(key, entry, this.clock, ttlMs);
    if (lockToken !== undefined) await this.unlock(key, lockToken);
    return this.clock;
  }

  /**
   * Stores an entry of another store (the first tier), keeping its `storedAt` on that store's
   * clock; `offset` is that clock minus this process's, so ages stay on one clock.
   */
  put(key: string, entry: StoredResponse, storedAt: number, ttlMs: number, offset = 0): void {
    if (ttlMs <= 0) return;
    this.entries.set(key, { entry, storedAt, offset }, { ttl: ttlMs });
    for (const tag of entry.tags) this.index(tag, key);
  }

  private index(tag: string, key: string): void {
    let keys = this.tags.get(tag);
    if (keys === undefined) {
      keys = new Set();
      this.tags.set(tag, keys);
    }
    keys.add(key);
  }

  async lock(key: string, token: string, ttlMs: number, seen?: number): Promise<LockAnswer> {
    const stored = this.entries.get(key)?.storedAt;
    if (stored !== undefined && stored !== seen) return "filled";
    const held = this.locks.get(key);
    const now = Date.now();
    if (held !== undefined && held.until > now) return "busy";
    this.locks.set(key, { token, until: now + ttlMs });
    if (this.locks.size > 10_000) this.pruneLocks(now);
    return seen !== undefined && stored === undefined ? "vanished" : "taken";
  }

  async remove(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async unlock(key: string, token: string): Promise<void> {
    if (this.locks.get(key)?.token === token) this.locks.delete(key);
  }

  /** Entries are indexed by their own tags when stored; this records a tag given apart. */
  async tag(tag: string, key: string, _ttlMs: number): Promise<void> {
    this.index(tag, key);
  }

  async purgeTag(tag: string): Promise<number> {
    const keys = this.tags.get(tag);
    this.tags.delete(tag);
    let deleted = 0;
    for (const key of keys ?? []) if (this.entries.delete(key)) deleted++;
    return deleted;
  }

  /** Drops one entry (first-tier invalidation). */
  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Drops every entry (first-tier invalidation after `purgeAll`). */
  clear(): void {
    this.entries.clear();
    this.tags.clear();
  }

  async generation(): Promise<number> {
    return this.gen;
  }

  async bumpGeneration(): Promise<number> {
    this.gen++;
    this.clear();
    return this.gen;
  }

  /** Number of entries held. */
  get size(): number {
    return this.entries.size;
  }

  private pruneLocks(now: number): void {
    for (const [key, held] of this.locks) if (held.until <= now) this.locks.delete(key);
  }
}
