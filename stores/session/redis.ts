/**
 * `UserSessionStore`: connect-redis's `RedisStore` (same keys, values, TTLs and callbacks) with
 * a per-user index, tombstones against resurrection and one round trip per request.
 *
 * Round trips: a read (`get`) is one script that also refreshes the TTL the way express-session's
 * `touch` would at the end of the request, so `touch` itself sends nothing (with the default
 * JSON serializer and a numeric `ttl`; otherwise `touch` is one script). A write (`set`) is one
 * script on a standalone Redis; on Cluster it is two (index, then session). See scripts.ts for
 * the keys and the order of steps on Cluster.
 */
import { RedisStore } from "connect-redis";
import type { SessionData } from "express-session";
import type { Cluster } from "ioredis";
import { isCluster } from "../core/client.js";
import { toError } from "../core/errors.js";
import { taggedKey } from "../core/keys.js";
import type { Logger } from "../core/logger.js";
import { track, untrack } from "../core/registry.js";
import type { RedisClient } from "../core/scripts.js";
import { createPubSub, type MessageHandler, type PubSub } from "../pubsub/pubsub.js";
import {
  byActivity,
  checkSessionId,
  checkUserId,
  isValidSessionId,
  type ListSessionsOptions,
  ownerOf,
  REVOKED_TYPE,
  type RevokeSessionsOptions,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  type StoreCallback,
  sessionHandle,
  settle,
  toInfo,
  type UserSessionIndex,
} from "./common.js";
import { parseUserSessionStoreOptions, type UserSessionStoreOptions } from "./options.js";
import { BUMP, INDEX_PUT, KILL, KILL_ALL, PEEK, READ, SEEN, WRITE } from "./scripts.js";

/** An index entry is certainly dead `GRACE_MS` after its score (see scripts.ts). */
const GRACE_MS = 60_000;
/** A read moves the index forward once it lags the session's expiry by more than this. */
const LAG_MS = 30_000;
/** Shortest life of a tombstone (it otherwise lives as long as the session could have). */
const TOMBSTONE_MS = 60_000;

/** A session store for express-session with "list / revoke / log out everywhere" per user. */
export class UserSessionStore extends RedisStore implements UserSessionIndex {
  /** The ioredis client given as `client`. */
  readonly redis: RedisClient;
  private readonly cfg: ReturnType<typeof parseUserSessionStoreOptions>;
  private readonly inline: 0 | 1;
  /** `json` when reads refresh the TTL themselves (touch free), `none` otherwise. */
  private readonly readMode: "json" | "none";
  private readonly events: PubSub;
  private readonly channel: string;
  private readonly counters: SessionStoreStats = { created: 0, revoked: 0, refusedWrites: 0 };

  /** See `UserSessionStoreOptions`; throws `InvalidOptionError` on a bad option. */
  constructor(options: UserSessionStoreOptions) {
    const cfg = parseUserSessionStoreOptions(options);
    super({
      client: cfg.client,
      prefix: cfg.prefix,
      scanCount: cfg.scanCount,
      serializer: cfg.serializer,
      ttl: cfg.ttl,
      disableTTL: cfg.disableTTL,
      disableTouch: cfg.disableTouch,
    });
    this.cfg = cfg;
    this.redis = cfg.client;
    this.inline = isCluster(cfg.client) ? 0 : 1;
    const touchable = !cfg.disableTouch && !cfg.disableTTL;
    this.readMode =
      touchable && cfg.serializer === undefined && typeof cfg.ttl === "number" ? "json" : "none";
    this.events = createPubSub({ redis: cfg.client, logger: cfg.logger });
    // Channels are not keyPrefixed by ioredis: apps sharing a Redis keep their events apart.
    this.channel = `${cfg.keyPrefix}${cfg.indexPrefix}revoked`;
    track("sessions", cfg.prefix, this, cfg.client);
  }

  private sessionKey(sid: string): string {
    return this.prefix + sid;
  }

  /** The companion hash: its hash tag is the whole session key, so it shares its slot. */
  private metaKey(sid: string): string {
    return `{${this.cfg.keyPrefix}${this.prefix}${sid}}:m`;
  }

  private indexKey(userId: string): string {
    return taggedKey(this.cfg.indexPrefix, userId);
  }

  /** A full key name (as stored in the companion hash) without the client's keyPrefix. */
  private strip(full: string): string {
    const kp = this.cfg.keyPrefix;
    return kp && full.startsWith(kp) ? full.slice(kp.length) : full;
  }

  /** TTL in ms as connect-redis computes it (seconds, from `cookie.expires` or `ttl`). */
  private ttlMs(sess: SessionData): number {
    const ttl = this.ttl;
    if (typeof ttl === "function") return Math.ceil(ttl(sess) * 1000);
    const expires = sess?.cookie?.expires;
    if (expires) return Math.ceil((Number(new Date(expires)) - Date.now()) / 1000) * 1000;
    return ttl * 1000;
  }

  /** The owner of `session` per the `userId` option (checked), or undefined. */
  userIdOf(session: Partial<SessionData>): string | undefined {
    return ownerOf(this.cfg.userId, session);
  }

  /** Reads a session; a malformed id is a miss. Refreshes its TTL (see the module comment). */
  override get(sid: string, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      if (!isValidSessionId(sid)) return null;
      const ttl = typeof this.ttl === "number" ? this.ttl * 1000 : 0;
      const reply = (await READ.run(
        this.redis,
        [this.sessionKey(sid), this.metaKey(sid)],
        [this.readMode, ttl, LAG_MS, GRACE_MS, this.inline, 1, sid],
      )) as [string, string | null, number | null, string | null] | null;
      if (reply === null) return null;
      if (reply[1] !== null && reply[2] !== null) {
        await this.bump(reply[1], sid, reply[2], reply[3] ?? "");
      }
      return await this.serializer.parse(reply[0]);
    });
  }

  /** Cluster: moves a lagging index entry forward, index first, then the companion. */
  private async bump(index: string, sid: string, expiry: number, before: string) {
    await BUMP.run(this.redis, [this.strip(index)], [sid, expiry, GRACE_MS]);
    await SEEN.run(this.redis, [this.metaKey(sid)], [expiry, before]);
  }

  /**
   * Writes a session and its index entry. A destroyed or revoked id is not written again
   * (a request in flight during a revoke cannot bring the session back); that is not an error.
   */
  override set(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      checkSessionId("UserSessionStore.set", sid);
      const ttl = this.ttlMs(sess);
      if (ttl <= 0) {
        await this.kill(sid, ""); // connect-redis destroys a session that has expired
        return null;
      }
      const value = this.serializer.stringify(sess);
      const owner = this.userIdOf(sess);
      const index = owner === undefined ? undefined : this.indexKey(owner);
      const full = index === undefined ? "" : this.cfg.keyPrefix + index;
      const ttlArg = this.cfg.disableTTL ? 0 : ttl;
      const max = this.cfg.maxSessionsPerUser;
      const sessionKeys = [this.sessionKey(sid), this.metaKey(sid)];
      let evict: string[] = [];
      if (index !== undefined && !this.inline) {
        evict = (await INDEX_PUT.run(
          this.redis,
          [index],
          [sid, ttlArg, GRACE_MS, max],
        )) as string[];
      }
      const keys = index !== undefined && this.inline ? [...sessionKeys, index] : sessionKeys;
      const reply = (await WRITE.run(this.redis, keys, [
        value,
        ttlArg,
        full,
        GRACE_MS,
        max,
        sid,
        this.inline,
        LAG_MS,
      ])) as [number, string, ...string[]];
      const [written, previous] = reply;
      if (this.inline) evict = reply.slice(2) as string[];
      if (!this.inline && previous && previous !== full) {
        await this.redis.zrem(this.strip(previous), sid);
      }
      if (written === 0) {
        this.counters.refusedWrites++;
        if (index !== undefined && !this.inline) await this.redis.zrem(index, sid);
        return null;
      }
      if (owner !== undefined && previous !== full) this.counters.created++;
      for (const id of evict) await this.revokeId(owner!, id, "evicted");
      return null;
    });
  }

  /**
   * Refreshes the TTL of an unmodified session. Free (no command) when reads already did it:
   * the default JSON serializer and a numeric `ttl`.
   */
  override touch(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      if (this.disableTouch || this.disableTTL || this.readMode === "json") return null;
      if (!isValidSessionId(sid)) return null;
      const reply = (await READ.run(
        this.redis,
        [this.sessionKey(sid), this.metaKey(sid)],
        ["fixed", this.ttlMs(sess), LAG_MS, GRACE_MS, this.inline, 0, sid],
      )) as [null, string | null, number | null, string | null] | null;
      if (reply?.[1] && reply[2] !== null) await this.bump(reply[1], sid, reply[2], reply[3] ?? "");
      return null;
    });
  }

  /** Deletes a session (logout, regenerate) and tombstones its id. */
  override destroy(sid: string, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      if (!isValidSessionId(sid)) return null;
      await this.kill(sid, "");
      return null;
    });
  }

  /**
   * Session first, then (on Cluster) its index entry. Returns 1 when it was `owner`'s (or any,
   * for `""`), 0 when someone else's (nothing done), 2 when it had no owner (tombstoned).
   */
  private async kill(sid: string, owner: string): Promise<number> {
    const [done, index] = (await KILL.run(
      this.redis,
      [this.sessionKey(sid), this.metaKey(sid)],
      [owner, TOMBSTONE_MS, sid, this.inline],
    )) as [number, string?];
    if (!this.inline && index) await this.redis.zrem(this.strip(index), sid);
    return done;
  }

  /** See `UserSessionIndex.listUserSessions`. */
  async listUserSessions(
    userId: string | number,
    options: ListSessionsOptions = {},
  ): Promise<SessionInfo[]> {
    const uid = checkUserId("listUserSessions", userId);
    const current = options.currentSessionId;
    const index = this.indexKey(uid);
    const full = this.cfg.keyPrefix + index;
    const ids = await this.redis.zrange(index, 0, "-1");
    const now = Date.now();
    const found = await Promise.all(
      ids.map(async (sid) => {
        const reply = (await PEEK.run(this.redis, [this.sessionKey(sid), this.metaKey(sid)], [])) as
          | [string, number, string | null]
          | null;
        // Expired, being written, or moved to someone else (on Cluster the mover removes it):
        // skipped, and pruned by score. Never removed here: on Cluster an entry can precede
        // its session's write, and removing it would leave that session unindexed.
        if (reply === null || reply[2] !== full) return undefined;
        const session = await this.parseOrUndefined(sid, reply[0]);
        return toInfo(sid, session, reply[1] >= 0 ? now + reply[1] : null, current);
      }),
    );
    return found.filter((s): s is SessionInfo => s !== undefined).sort(byActivity);
  }

  private async parseOrUndefined(sid: string, text: string): Promise<unknown> {
    try {
      return await this.serializer.parse(text);
    } catch (err) {
      this.cfg.logger.warn(
        `UserSessionStore: session ${sessionHandle(sid)} does not parse: ${toError(err).message}`,
      );
      return undefined;
    }
  }

  /** See `UserSessionIndex.revokeSession`; `id` is the handle a listing shows. */
  async revokeSession(userId: string | number, id: string): Promise<boolean> {
    const uid = checkUserId("revokeSession", userId);
    if (typeof id !== "string" || !/^[A-Za-z0-9_-]{22}$/.test(id)) return false;
    const ids = await this.redis.zrange(this.indexKey(uid), 0, "-1");
    const sid = ids.find((candidate) => sessionHandle(candidate) === id);
    return sid === undefined ? false : this.revokeId(uid, sid, "revoked");
  }

  private async revokeId(
    uid: string,
    sid: string,
    reason: SessionRevokedEvent["reason"],
  ): Promise<boolean> {
    const index = this.indexKey(uid);
    const done = await this.kill(sid, this.cfg.keyPrefix + index);
    if (done === 2) await this.redis.zrem(index, sid); // no owner: tombstoned, a dead entry
    if (done !== 1) return false; // 0: someone else's now; their revoke, not this one
    this.counters.revoked++;
    await this.announce(uid, [sid], reason);
    return true;
  }

  /** See `UserSessionIndex.revokeUserSessions`. */
  async revokeUserSessions(
    userId: string | number,
    options: RevokeSessionsOptions = {},
  ): Promise<number> {
    const uid = checkUserId("revokeUserSessions", userId);
    const except =
      options.except === undefined ? "" : checkSessionId("revokeUserSessions", options.except);
    const index = this.indexKey(uid);
    const full = this.cfg.keyPrefix + index;
    let revoked: string[] = [];
    if (this.inline) {
      revoked = (await KILL_ALL.run(
        this.redis,
        [index],
        [full, this.cfg.keyPrefix + this.prefix, except, TOMBSTONE_MS, this.cfg.keyPrefix],
      )) as string[];
    } else {
      // Sessions written while this runs are indexed first, so a second pass catches them.
      const foreign = new Set<string>([except]);
      for (let pass = 0; pass < 3; pass++) {
        const ids = await this.redis.zrange(index, 0, "-1");
        const targets = ids.filter((sid) => !foreign.has(sid));
        if (!targets.length) break;
        const done = await Promise.all(targets.map((sid) => this.kill(sid, full)));
        const dead = targets.filter((_, i) => done[i] === 2);
        if (dead.length) await this.redis.zrem(index, ...dead);
        for (const [i, sid] of targets.entries()) {
          if (done[i] === 1) revoked.push(sid);
          if (done[i] === 0) foreign.add(sid); // someone else's now: left to score pruning
        }
      }
    }
    this.counters.revoked += revoked.length;
    await this.announce(uid, revoked, "revoked");
    return revoked.length;
  }

  private async announce(uid: string, sids: string[], reason: SessionRevokedEvent["reason"]) {
    for (const sid of sids) {
      const event: SessionRevokedEvent = { userId: uid, sessionId: sessionHandle(sid), reason };
      try {
        await this.events.publish(this.channel, event, REVOKED_TYPE);
      } catch (err) {
        this.cfg.logger.warn(`UserSessionStore: revocation not published: ${toError(err).message}`);
      }
    }
  }

  /** See `UserSessionIndex.onRevoked`. */
  onRevoked(handler: MessageHandler<SessionRevokedEvent>): Promise<() => Promise<void>> {
    return this.events.subscribe(this.channel, handler);
  }

  /** See `UserSessionIndex.stats`. */
  stats(): SessionStoreStats {
    return { ...this.counters };
  }

  /** See `UserSessionIndex.close`. */
  close(): Promise<void> {
    untrack(this);
    return this.events.close();
  }

  /** Every key matching `pattern` (without keyPrefix) on every master, keyPrefix stripped. */
  private async scanKeys(pattern: string): Promise<string[]> {
    const nodes = isCluster(this.redis) ? (this.redis as Cluster).nodes("master") : [this.redis];
    const match = this.cfg.keyPrefix + pattern;
    const keys: string[] = [];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, batch] = await node.scan(cursor, "MATCH", match, "COUNT", this.scanCount);
        cursor = next;
        for (const key of batch) keys.push(this.strip(key));
      } while (cursor !== "0");
    }
    return keys;
  }

  /** Session ids (SCAN over every master; never called on a request path). */
  override ids(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () =>
      (await this.scanKeys(`${this.prefix}*`)).map((key) => key.slice(this.prefix.length)),
    );
  }

  /** Number of sessions. */
  override length(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => (await this.scanKeys(`${this.prefix}*`)).length);
  }

  /** Every session, each with its `id`. */
  override all(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      const keys = await this.scanKeys(`${this.prefix}*`);
      const values = await Promise.all(keys.map((key) => this.redis.get(key)));
      const sessions: unknown[] = [];
      for (const [i, value] of values.entries()) {
        if (value === null) continue;
        const session = (await this.serializer.parse(value)) as SessionData & { id?: string };
        session.id = keys[i]!.slice(this.prefix.length);
        sessions.push(session);
      }
      return sessions;
    });
  }

  /** Deletes every session, companion hash and index of this store (not other keys). */
  override clear(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      const keys = [
        ...(await this.scanKeys(`${this.prefix}*`)),
        ...(await this.scanKeys(`{${this.cfg.keyPrefix}${this.prefix}*`)),
        ...(await this.scanKeys(`${this.cfg.indexPrefix}*`)),
      ];
      await Promise.all(keys.map((key) => this.redis.unlink(key)));
      return null;
    });
  }
}

export type { Logger };
