/**
 * `MemorySessionStore`: the in-process session store with the same index API and semantics as
 * `UserSessionStore` (TTL from the cookie or `ttl`, refreshed on read so `touch` has nothing to
 * do unless the cookie's expiry changed; tombstones; per-user index; revocation events in
 * process). Like express-session's `MemoryStore` it keeps sessions
 * as JSON strings, so a handler never shares objects with the store. For one process only.
 */
import { randomUUID } from "node:crypto";
import type { SessionData } from "express-session";
import { Store } from "express-session";
import { LRUCache } from "lru-cache";
import { track, untrack } from "../core/registry.js";
import { createPubSub, type MessageHandler, type PubSub } from "../pubsub/pubsub.js";
import {
  byActivity,
  checkSessionId,
  checkUserId,
  isHandle,
  isValidSessionId,
  type ListSessionsOptions,
  ownerOf,
  REVOKED_TYPE,
  type RevokeSessionsOptions,
  revokeArgs,
  revokedEvent,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  type StoreCallback,
  sessionHandle,
  settle,
  TOMBSTONE_MS,
  TOUCH_SLACK_MS,
  toInfo,
  ttlMsOf,
  type UserSessionIndex,
} from "./common.js";
import { type MemorySessionStoreOptions, parseMemorySessionStoreOptions } from "./options.js";

interface Entry {
  json: string;
  owner: string | undefined;
}

/** In-process session store with the `UserSessionIndex` API; the embedded default. */
export class MemorySessionStore extends Store implements UserSessionIndex {
  private readonly cfg: ReturnType<typeof parseMemorySessionStoreOptions>;
  private readonly sessions: LRUCache<string, Entry>;
  private readonly tombstones: LRUCache<string, true>;
  private readonly index = new Map<string, Set<string>>();
  /** Created by the first `onRevoked()`: nothing to publish to before that. */
  private events: PubSub | undefined;
  /** The in-process bus is shared by every memory pub/sub: a channel of this store's own. */
  private readonly channel = `memory-sessions:${randomUUID()}:revoked`;
  private readonly counters: SessionStoreStats = { created: 0, revoked: 0, refusedWrites: 0 };

  /** See `MemorySessionStoreOptions`; throws `InvalidOptionError` on a bad option. */
  constructor(options: MemorySessionStoreOptions = {}) {
    super();
    this.cfg = parseMemorySessionStoreOptions(options);
    this.sessions = new LRUCache({
      max: this.cfg.maxSessions,
      dispose: (entry, sid, reason) => {
        if (reason !== "set" && entry.owner !== undefined) this.unindex(entry.owner, sid);
      },
    });
    // Logouts outnumber live sessions under churn: room for four tombstones per session.
    this.tombstones = new LRUCache({ max: this.cfg.maxSessions * 4 });
    track("sessions", "memory", this);
  }

  private unindex(owner: string, sid: string): void {
    const ids = this.index.get(owner);
    ids?.delete(sid);
    if (ids?.size === 0) this.index.delete(owner);
  }

  /** TTL in ms a read refreshes to (what express-session's touch would send). */
  private touchMs(sess: SessionData): number {
    const ttl = this.cfg.ttl;
    if (typeof ttl === "function") return Math.ceil(ttl(sess) * 1000);
    const max = sess?.cookie?.originalMaxAge;
    return typeof max === "number" ? Math.ceil(max / 1000) * 1000 : ttl * 1000;
  }

  /** See `UserSessionIndex.userIdOf`. */
  userIdOf(session: Partial<SessionData>): string | undefined {
    return ownerOf(this.cfg.userId, session);
  }

  /** Reads a session (a malformed id is a miss) and refreshes its TTL unless `disableTouch`. */
  override get(sid: string, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      if (!isValidSessionId(sid)) return null;
      const entry = this.sessions.get(sid);
      if (entry === undefined) return null;
      const sess = JSON.parse(entry.json) as SessionData;
      if (!this.cfg.disableTouch) {
        const ttl = this.touchMs(sess);
        if (ttl > 0) this.sessions.set(sid, entry, { ttl });
      }
      return sess;
    });
  }

  /** Writes a session unless its id was destroyed or revoked. */
  override set(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      checkSessionId("MemorySessionStore.set", sid);
      const ttl = ttlMsOf(this.cfg.ttl, sess);
      if (ttl <= 0) {
        this.kill(sid);
        return null;
      }
      if (this.tombstones.has(sid)) {
        this.counters.refusedWrites++;
        return null;
      }
      const owner = this.userIdOf(sess);
      const previous = this.sessions.peek(sid)?.owner;
      this.sessions.set(sid, { json: JSON.stringify(sess), owner }, { ttl });
      if (previous !== undefined && previous !== owner) this.unindex(previous, sid);
      if (owner === undefined) return null;
      if (previous !== owner) this.counters.created++;
      let ids = this.index.get(owner);
      if (ids === undefined) {
        ids = new Set();
        this.index.set(owner, ids);
      }
      ids.add(sid);
      this.evictPast(owner, ids, sid);
      return null;
    });
  }

  /** Revokes the oldest sessions (by expiry) past `maxSessionsPerUser`, never `keep`. */
  private evictPast(owner: string, ids: Set<string>, keep: string): void {
    for (const sid of ids) if (!this.sessions.has(sid)) ids.delete(sid);
    const max = this.cfg.maxSessionsPerUser;
    if (ids.size <= max) return;
    const oldest = [...ids]
      .filter((sid) => sid !== keep)
      .sort((a, b) => this.sessions.getRemainingTTL(a) - this.sessions.getRemainingTTL(b))
      .slice(0, ids.size - max);
    for (const sid of oldest) this.revokeId(owner, sid, "evicted");
  }

  /**
   * Sets the TTL of an unmodified session from `sess` (its cookie's expiry, or `ttl`), as
   * `UserSessionStore` does: nothing to do when the read already set it (within a second); a
   * past expiry deletes the session, as in `set`.
   */
  override touch(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      if (this.cfg.disableTouch || !isValidSessionId(sid)) return null;
      const entry = this.sessions.peek(sid);
      if (entry === undefined) return null;
      const ttl = ttlMsOf(this.cfg.ttl, sess);
      if (ttl <= 0) this.kill(sid);
      else if (Math.abs(this.sessions.getRemainingTTL(sid) - ttl) > TOUCH_SLACK_MS) {
        this.sessions.set(sid, entry, { ttl });
      }
      return null;
    });
  }

  /** Deletes a session (logout, regenerate) and tombstones its id. */
  override destroy(sid: string, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      if (isValidSessionId(sid)) this.kill(sid);
      return null;
    });
  }

  private kill(sid: string): string | undefined {
    const keep = Math.max(
      this.sessions.getRemainingTTL(sid),
      this.tombstones.getRemainingTTL(sid), // never shortened by a second destroy
      TOMBSTONE_MS,
    );
    const owner = this.sessions.peek(sid)?.owner;
    this.sessions.delete(sid);
    this.tombstones.set(sid, true, { ttl: Number.isFinite(keep) ? keep : TOMBSTONE_MS });
    return owner;
  }

  /** See `UserSessionIndex.listUserSessions`. */
  async listUserSessions(
    userId: string | number,
    options: ListSessionsOptions = {},
  ): Promise<SessionInfo[]> {
    const uid = checkUserId("listUserSessions", userId);
    const out: SessionInfo[] = [];
    for (const sid of this.index.get(uid) ?? []) {
      const entry = this.sessions.peek(sid);
      if (entry?.owner !== uid) continue;
      const expiresAt = Math.round(Date.now() + this.sessions.getRemainingTTL(sid));
      out.push(toInfo(sid, JSON.parse(entry.json), expiresAt, options.currentSessionId));
    }
    return out.sort(byActivity);
  }

  /** See `UserSessionIndex.revokeSession`. */
  async revokeSession(userId: string | number, id: string): Promise<boolean> {
    const uid = checkUserId("revokeSession", userId);
    if (!isHandle(id)) return false;
    for (const sid of this.index.get(uid) ?? []) {
      if (sessionHandle(sid) === id) return this.revokeId(uid, sid, "revoked");
    }
    return false;
  }

  private revokeId(uid: string, sid: string, reason: SessionRevokedEvent["reason"]): boolean {
    if (this.sessions.peek(sid)?.owner !== uid) {
      this.unindex(uid, sid);
      return false;
    }
    this.kill(sid);
    this.counters.revoked++;
    this.events
      ?.publish(this.channel, revokedEvent(uid, sid, reason), REVOKED_TYPE)
      .catch(() => {});
    return true;
  }

  /** See `UserSessionIndex.revokeUserSessions`. */
  async revokeUserSessions(
    userId: string | number,
    options: RevokeSessionsOptions = {},
  ): Promise<number> {
    const { uid, except } = revokeArgs(userId, options);
    let count = 0;
    for (const sid of [...(this.index.get(uid) ?? [])]) {
      if (sid !== except && this.revokeId(uid, sid, "revoked")) count++;
    }
    return count;
  }

  /** See `UserSessionIndex.onRevoked`. */
  onRevoked(handler: MessageHandler<SessionRevokedEvent>): Promise<() => Promise<void>> {
    this.events ??= createPubSub({ logger: this.cfg.logger }, "MemorySessionStore");
    return this.events.subscribe(this.channel, handler);
  }

  /** See `UserSessionIndex.stats`. */
  stats(): SessionStoreStats {
    return { ...this.counters };
  }

  /** See `UserSessionIndex.close`. */
  close(): Promise<void> {
    untrack(this);
    return this.events?.close() ?? Promise.resolve();
  }

  /** Live session ids. */
  ids(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => [...this.sessions.keys()]); // keys() skips expired entries
  }

  /** Number of live sessions. */
  override length(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => [...this.sessions.keys()].length);
  }

  /** Every live session, each with its `id`. */
  override all(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      const out: unknown[] = [];
      for (const [sid, entry] of this.sessions.entries()) {
        out.push({ ...(JSON.parse(entry.json) as object), id: sid });
      }
      return out;
    });
  }

  /** Deletes every session, tombstone and index entry. */
  override clear(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => {
      this.sessions.clear();
      this.tombstones.clear();
      this.index.clear();
      return null;
    });
  }
}
