/**
 * The cache store interface. A store keeps encoded entries under opaque keys (already hashed
 * and hash-tagged by the caller), the fill locks that coalesce misses, and tag indexes.
 * `RedisCacheStore` and `MemoryCacheStore` implement it with the same semantics.
 */

/** What is stored for one response (or, with `vary` set, a marker listing its Vary fields). */
export interface StoredResponse {
  /** HTTP status. */
  status: number;
  /** Header fields to replay, in order, names as the handler wrote them. */
  headers: [string, string][];
  /** Response body bytes, exactly as sent (already content-encoded when it was). */
  body: Buffer;
  /** Age the response already had when stored (RFC 9111 §4.2.3 corrected initial age), ms. */
  initialAgeMs: number;
  /** Freshness lifetime from the moment of storing, ms. */
  freshMs: number;
  /** After freshness ends: how long it may be served while one request refreshes, ms. */
  staleWhileRevalidateMs: number;
  /** After freshness ends: how long it may replace a 5xx or error, ms. */
  staleIfErrorMs: number;
  /**
   * Kept this long past its stale windows to be revalidated, ms (its response has a validator;
   * absent in entries stored before revalidation existed: 0).
   */
  keepMs?: number;
  /** Validated with the origin before every use (`no-cache`). */
  noCache?: boolean;
  /** Its `ETag` was made by the cache (the handler sent none): not sent when revalidating. */
  etagGenerated?: boolean;
  /** Never served stale, not even past a failed revalidation (`must-revalidate`, `no-cache`). */
  mustRevalidate?: boolean;
  /** Its response has an `ETag` or `Last-Modified` from the origin: stale, it is revalidated. */
  validators?: boolean;
  /** Tags it was stored with (for the memory tier's purge by tag). */
  tags: string[];
  /** Set on a marker entry: the response's Vary field names (lowercase). */
  vary?: string[];
}

/** How long an entry is stored: fresh, then its longest stale window or keep time, ms. */
export function retentionMs(entry: StoredResponse): number {
  return (
    entry.freshMs + Math.max(entry.staleWhileRevalidateMs, entry.staleIfErrorMs, entry.keepMs ?? 0)
  );
}

/** An entry read back, with the store's clock at the time of reading. */
export interface Lookup {
  entry: StoredResponse;
  /** When it was stored, on the store's clock (Redis `TIME` or `Date.now()`), ms. */
  storedAt: number;
  /** The store's clock when it was read, ms. */
  now: number;
}

/**
 * `lock()`'s answer: taken by this caller, held by another, the entry is there now (stored
 * since the caller looked), or taken while the entry the caller saw is gone (purged meanwhile).
 */
export type LockAnswer = "taken" | "busy" | "filled" | "vanished";

/** Storage of entries, fill locks and tag indexes. */
export interface CacheStore {
  /** Reads an entry. One command on Redis. */
  get(key: string): Promise<Lookup | undefined>;
  /**
   * Stores an entry for `ttlMs` and releases the fill lock `lockToken` held on `key`, if any.
   * Resolves with the entry's `storedAt` on the store's clock.
   */
  set(key: string, entry: StoredResponse, ttlMs: number, lockToken?: string): Promise<number>;
  /**
   * Takes the fill lock on `key` for `ttlMs`, unless the entry was stored since the caller read
   * it (`seen`: the `storedAt` it read, or `undefined` when it found none).
   */
  lock(key: string, token: string, ttlMs: number, seen?: number): Promise<LockAnswer>;
  /** Deletes one entry. */
  remove(key: string): Promise<void>;
  /** Releases the fill lock if `token` still holds it. */
  unlock(key: string, token: string): Promise<void>;
  /** Records that `key` carries `tag` (until `ttlMs`, the entry's lifetime). */
  tag(tag: string, key: string, ttlMs: number): Promise<void>;
  /** Deletes the entries of `tag` and the tag's index; resolves with how many were deleted. */
  purgeTag(tag: string): Promise<number>;
  /** The generation counter (bumped by `purgeAll`). */
  generation(): Promise<number>;
  /** Increments the generation; resolves with the new value. */
  bumpGeneration(): Promise<number>;
}

/** Memory limits of a memory store or first tier when none are given. */
export const DEFAULT_MEMORY_LIMITS = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 } as const;

/** Counters since the cache was created. */
export interface ResponseCacheStats {
  hits: number;
  misses: number;
  stale: number;
  bypasses: number;
  /** Requests that waited for another request's fill. */
  coalesced: number;
  /** Stale entries revalidated with the origin (the handler ran as a conditional request). */
  validations: number;
  /** Of those, how many the handler answered 304 (the entry was refreshed, not rebuilt). */
  notModified: number;
  /** Responses stored. */
  stored: number;
  /** Redis calls that failed or timed out (each answered as a miss). */
  errors: number;
  /** `"redis"`, `"memory"` (no Redis given) or `"degraded"` (Redis failing). */
  state: "redis" | "memory" | "degraded";
  /** Entries in the in-process tier (or the memory backend). */
  memoryEntries: number;
}

/** What a filler holds: its lock token and the purge sequence when it began. */
export interface FillClaim {
  token: string;
  since: number;
  /** The entry the filler saw was purged before it took the lock: fill, do not revalidate. */
  vanished?: boolean;
}

/** The answer of `claim()`. */
export type Claim = ({ kind: "fill" } & FillClaim) | { kind: "busy" } | { kind: "filled" };
