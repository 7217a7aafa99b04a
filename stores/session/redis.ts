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
import type { RedisDriver } from "../core/driver.js";
import { track, untrack } from "../core/registry.js";
import type { RedisClient } from "../core/scripts.js";
import { createPubSub, type MessageHandler, type PubSub } from "../pubsub/pubsub.js";
import {
  checkSessionId,
  isValidSessionId,
  type ListSessionsOptions,
  ownerOf,
  type RevokeSessionsOptions,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  type StoreCallback,
  settle,
  ttlMsOf,
  type UserSessionIndex,
} from "./common.js";
import { parseUserSessionStoreOptions, type UserSessionStoreOptions } from "./options.js";
import { GRACE_MS, LAG_MS, RedisIndex } from "./redis-index.js";
import { BUMP, INDEX_PUT, READ, SEEN, WRITE } from "./scripts.js";

/** A session store for express-session with "list / revoke / log out everywhere" per user. */
export class UserSessionStore extends RedisStore implements UserSessionIndex {
  /** The client given as `client`. */
  readonly redis: RedisClient;
  private readonly driver: RedisDriver;
  private readonly cfg: ReturnType<typeof parseUserSessionStoreOptions>;
  /** `json` when reads refresh the TTL themselves (touch free), `none` otherwise. */
  private readonly readMode: "json" | "none";
  private readonly events: PubSub;
  private readonly channel: string;
  private readonly index: RedisIndex;
  private readonly counters: SessionStoreStats = { created: 0, revoked: 0, refusedWrites: 0 };

  /** See `UserSessionStoreOptions`; throws `InvalidOptionError` on a bad option. */
  constructor(options: UserSessionStoreOptions) {
    const cfg = parseUserSessionStoreOptions(options);
    super({
      client: cfg.client.client,
      prefix: cfg.prefix,
      scanCount: cfg.scanCount,
      serializer: cfg.serializer,
      ttl: cfg.ttl,
      disableTTL: cfg.disableTTL,
      disableTouch: cfg.disableTouch,
    });
    this.cfg = cfg;
    this.driver = cfg.client;
    this.redis = cfg.client.client as RedisClient;
    const touchable = !cfg.disableTouch && !cfg.disableTTL;
    this.readMode =
      touchable && cfg.serializer === undefined && typeof cfg.ttl === "number" ? "json" : "none";
    this.events = createPubSub({ redis: this.redis, logger: cfg.logger });
    // Channels are not keyPrefixed by the clients: apps sharing a Redis keep their events apart.
    this.channel = `${cfg.keyPrefix}${cfg.indexPrefix}revoked`;
    this.index = new RedisIndex({
      redis: cfg.client,
      keyPrefix: cfg.keyPrefix,
      prefix: this.prefix,
      indexPrefix: cfg.indexPrefix,
      scanCount: this.scanCount,
      parse: (text) => this.serializer.parse(text),
      logger: cfg.logger,
      counters: this.counters,
      events: this.events,
      channel: this.channel,
    });
    track("sessions", cfg.prefix, this, cfg.client);
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
        this.driver,
        [this.index.sessionKey(sid), this.index.metaKey(sid)],
        [this.readMode, ttl, LAG_MS, GRACE_MS, this.index.inline, 1, sid],
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
    await BUMP.run(this.driver, [this.index.strip(index)], [sid, expiry, GRACE_MS]);
    await SEEN.run(this.driver, [this.index.metaKey(sid)], [expiry, before]);
  }

  /**
   * Writes a session and its index entry. A destroyed or revoked id is not written again
   * (a request in flight during a revoke cannot bring the session back); that is not an error.
   */
  override set(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      checkSessionId("UserSessionStore.set", sid);
      const ttl = ttlMsOf(this.ttl, sess);
      if (ttl <= 0) {
        await this.index.kill(sid, ""); // connect-redis destroys a session that has expired
        return null;
      }
      const value = this.serializer.stringify(sess);
      const owner = this.userIdOf(sess);
      const index = owner === undefined ? undefined : this.index.indexKey(owner);
      const full = index === undefined ? "" : this.cfg.keyPrefix + index;
      const ttlArg = this.cfg.disableTTL ? 0 : ttl;
      const max = this.cfg.maxSessionsPerUser;
      const sessionKeys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
      let evict: string[] = [];
      if (index !== undefined && !this.index.inline) {
        evict = (await INDEX_PUT.run(
          this.driver,
          [index],
          [sid, ttlArg, GRACE_MS, max],
        )) as string[];
      }
      const keys = index !== undefined && this.index.inline ? [...sessionKeys, index] : sessionKeys;
      const reply = (await WRITE.run(this.driver, keys, [
        value,
        ttlArg,
        full,
        GRACE_MS,
        max,
        sid,
        this.index.inline,
        LAG_MS,
      ])) as [number, string, ...string[]];
      const [written, previous] = reply;
      if (this.index.inline) evict = reply.slice(2) as string[];
      if (!this.index.inline && previous && previous !== full) {
        await this.driver.command("ZREM", [this.index.strip(previous)], [sid]);
      }
      if (written === 0) {
        this.counters.refusedWrites++;
        if (index !== undefined && !this.index.inline)
          await this.driver.command("ZREM", [index], [sid]);
        return null;
      }
      if (owner !== undefined && previous !== full) this.counters.created++;
      for (const id of evict) await this.index.revokeId(owner!, id, "evicted");
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
        this.driver,
        [this.index.sessionKey(sid), this.index.metaKey(sid)],
        ["fixed", ttlMsOf(this.ttl, sess), LAG_MS, GRACE_MS, this.index.inline, 0, sid],
      )) as [null, string | null, number | null, string | null] | null;
      if (reply?.[1] && reply[2] !== null) await this.bump(reply[1], sid, reply[2], reply[3] ?? "");
      return null;
    });
  }

  /** Deletes a session (logout, regenerate) and tombstones its id. */
  override destroy(sid: string, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      if (!isValidSessionId(sid)) return null;
      await this.index.kill(sid, "");
      return null;
    });
  }

  /** See `UserSessionIndex.listUserSessions`. */
  listUserSessions(userId: string | number, options?: ListSessionsOptions): Promise<SessionInfo[]> {
    return this.index.listUserSessions(userId, options);
  }

  /** See `UserSessionIndex.revokeSession`; `id` is the handle a listing shows. */
  revokeSession(userId: string | number, id: string): Promise<boolean> {
    return this.index.revokeSession(userId, id);
  }

  /** See `UserSessionIndex.revokeUserSessions`. */
  revokeUserSessions(userId: string | number, options?: RevokeSessionsOptions): Promise<number> {
    return this.index.revokeUserSessions(userId, options);
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

  /** Session ids (SCAN over every master; never called on a request path). */
  override ids(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () =>
      (await this.index.scanKeys(`${this.prefix}*`)).map((key) => key.slice(this.prefix.length)),
    );
  }

  /** Number of sessions. */
  override length(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => (await this.index.scanKeys(`${this.prefix}*`)).length);
  }

  /** Every session, each with its `id`. */
  override all(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      const keys = await this.index.scanKeys(`${this.prefix}*`);
      const values = await Promise.all(keys.map((key) => this.driver.command("GET", [key])));
      const sessions: unknown[] = [];
      for (const [i, value] of values.entries()) {
        if (value === null) continue;
        const session = (await this.serializer.parse(String(value))) as SessionData & {
          id?: string;
        };
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
        ...(await this.index.scanKeys(`${this.prefix}*`)),
        ...(await this.index.scanKeys(`{${this.cfg.keyPrefix}${this.prefix}*`)),
        ...(await this.index.scanKeys(`${this.cfg.indexPrefix}*`)),
      ];
      await Promise.all(keys.map((key) => this.driver.command("UNLINK", [key])));
      return null;
    });
  }
}
