/**
 * `UserSessionStore`: connect-redis's `RedisStore` (same keys, values, TTLs and callbacks) with
 * a per-user index, tombstones against resurrection and one round trip per request.
 *
 * Round trips: a read (`get`) is one script that also refreshes the TTL the way express-session's
 * `touch` would at the end of the request (with the default JSON serializer and a numeric
 * `ttl`). `touch` then sends nothing when the session it is given asks for the expiry that read
 * set (within a second); when it asks for another one ("remember me": `cookie.maxAge` changed
 * without changing the session) it sets that, as connect-redis does. A write (`set`) is one
 * script on a standalone Redis; on Cluster it is two (index, then session). See scripts.ts.
 *
 * Failures: every Redis call goes through a `BackendSwitch` in mode `closed`: it rejects with
 * `StoreUnavailableError` when Redis fails or misses `timeoutMs`, at once while Redis is known
 * to be failing (one call per `recheckMs` tries it), and the store is back when Redis answers.
 */
import { RedisStore } from "connect-redis";
import type { SessionData } from "express-session";
import type { RedisDriver } from "../core/driver.js";
import { BackendSwitch, pingOf } from "../core/fallback.js";
import { track, untrack } from "../core/registry.js";
import { AcknowledgedDriver } from "../core/replicas.js";
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
  TOUCH_SLACK_MS,
  ttlMsOf,
  type UserSessionIndex,
} from "./common.js";
import { parseUserSessionStoreOptions, type UserSessionStoreOptions } from "./options.js";
import { type Call, RedisIndex } from "./redis-index.js";
import { BUMP, INDEX_PUT, READ, SEEN, WRITE } from "./scripts.js";

/** `READ`'s reply: value, lagging index, new expiry, expiry the index held, TTL set (ms). */
type ReadReply = [string, string | null, number | null, string | null, number];

/** The switch's answer in mode `closed` (it never answers `undefined`, which is `open`'s). */
const answered = <T>(answer: { value: T } | undefined): T => (answer as { value: T }).value;

/** A session store for express-session with "list / revoke / log out everywhere" per user. */
export class UserSessionStore extends RedisStore implements UserSessionIndex {
  /** The client given as `redis` (or `client`). */
  readonly redis: RedisClient;
  private readonly cfg: ReturnType<typeof parseUserSessionStoreOptions>;
  /** `json` when reads refresh the TTL themselves (touch free), `none` otherwise. */
  private readonly readMode: "json" | "none";
  /** The TTL a read sets when the session has no `cookie.originalMaxAge` (0 for none). */
  private readonly readTtlMs: number;
  /**
   * The expiry (ms since the epoch, at the earliest) the read that returned a session set, per
   * session object; carried to the object express-session builds from it (`createSession`).
   * Weak: an entry lives as long as its request's session.
   */
  private readonly readExpiry = new WeakMap<object, number>();
  private readonly switch: BackendSwitch<RedisDriver>;
  /** Every Redis call goes through the switch (see the module comment). */
  private readonly call: Call;
  /** Writes: `call`, or with `replicas` on a connection that WAITs for them. */
  private readonly write: Call;
  private readonly acknowledging: AcknowledgedDriver | undefined;
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
    this.redis = cfg.client.client as RedisClient;
    const touchable = !cfg.disableTouch && !cfg.disableTTL;
    this.readMode =
      touchable && cfg.serializer === undefined && typeof cfg.ttl === "number" ? "json" : "none";
    this.readTtlMs = typeof cfg.ttl === "number" ? cfg.ttl * 1000 : 0;
    this.switch = new BackendSwitch<RedisDriver>({
      scope: "UserSessionStore",
      redis: cfg.client,
      memory: undefined,
      ...cfg.failure, // onRedisError: "closed", the only mode offered
      logger: cfg.logger,
      ping: pingOf(cfg.client),
    });
    this.call = (op) => this.switch.run(op).then(answered);
    const acked = cfg.replicas && new AcknowledgedDriver(cfg.client, cfg.replicas);
    this.acknowledging = acked;
    this.write = acked ? (op) => this.switch.run(() => op(acked)).then(answered) : this.call;
    this.events = createPubSub({ redis: this.redis, logger: cfg.logger }, "UserSessionStore");
    // Channels are not keyPrefixed by the clients: apps sharing a Redis keep their events apart.
    this.channel = `${cfg.keyPrefix}${cfg.indexPrefix}revoked`;
    this.index = new RedisIndex({
      isCluster: cfg.client.isCluster,
      call: this.call,
      write: this.write,
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
      const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
      const args = [this.readMode, this.readTtlMs, this.index.inline, 1, sid];
      const sent = Date.now();
      const reply = (await this.call((d) => READ.run(d, keys, args))) as ReadReply | null;
      if (reply === null) return null;
      if (reply[1] !== null && reply[2] !== null) {
        await this.bump(reply[1], sid, reply[2], reply[3] ?? "");
      }
      const session: unknown = await this.serializer.parse(reply[0]);
      const ttl = Number(reply[4]);
      if (ttl > 0 && typeof session === "object" && session !== null) {
        this.readExpiry.set(session, sent + ttl);
      }
      return session;
    });
  }

  /**
   * express-session turns what `get` returned into its `req.session` here: the expiry that
   * read set follows, so `touch` can tell whether it has anything to do.
   */
  override createSession(req: Parameters<RedisStore["createSession"]>[0], sess: SessionData) {
    const created = super.createSession(req, sess);
    const expiry = this.readExpiry.get(sess);
    if (expiry !== undefined) this.readExpiry.set(created, expiry);
    return created;
  }

  /** Cluster: moves a lagging index entry forward, index first, then the companion. */
  private async bump(index: string, sid: string, expiry: number, before: string) {
    await this.call((d) => BUMP.run(d, [this.index.strip(index)], [sid, expiry]));
    await this.call((d) => SEEN.run(d, [this.index.metaKey(sid)], [expiry, before]));
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
      const inline = this.index.inline;
      let evict: string[] = [];
      if (index !== undefined && !inline) {
        const args = [sid, ttlArg, max];
        evict = (await this.write((d) => INDEX_PUT.run(d, [index], args))) as string[];
      }
      const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
      if (index !== undefined && inline) keys.push(index);
      const args = [value, ttlArg, full, max, sid, inline];
      const reply = (await this.write((d) => WRITE.run(d, keys, args))) as [
        number,
        string,
        ...string[],
      ];
      const [written, previous] = reply;
      if (inline) evict = reply.slice(2) as string[];
      if (!inline && previous && previous !== full) {
        await this.index.zrem(this.index.strip(previous), [sid]);
      }
      if (written === 0) {
        this.counters.refusedWrites++;
        if (index !== undefined && !inline) await this.index.zrem(index, [sid]);
        return null;
      }
      if (owner !== undefined && previous !== full) this.counters.created++;
      for (const id of evict) await this.index.revokeId(owner!, id, "evicted");
      return null;
    });
  }

  /**
   * Sets the TTL of an unmodified session from `sess` (its cookie's expiry, or `ttl`), as
   * connect-redis does. Free (no command) when the read that returned `sess` already set that
   * expiry, within a second; a past expiry deletes the session, as in `set`.
   */
  override touch(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      if (this.cfg.disableTouch || this.cfg.disableTTL || !isValidSessionId(sid)) return null;
      const ttl = ttlMsOf(this.ttl, sess);
      if (ttl <= 0) {
        await this.index.kill(sid, "");
        return null;
      }
      const now = Date.now();
      const read = this.readExpiry.get(sess);
      if (read !== undefined && Math.abs(now + ttl - read) <= TOUCH_SLACK_MS) return null;
      const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
      const args = ["fixed", ttl, this.index.inline, 0, sid];
      const reply = (await this.call((d) => READ.run(d, keys, args))) as ReadReply | null;
      if (reply === null) return null;
      if (reply[1] !== null && reply[2] !== null) {
        await this.bump(reply[1], sid, reply[2], reply[3] ?? "");
      }
      if (read !== undefined) this.readExpiry.set(sess, now + ttl); // a second touch: free
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

  /** See `UserSessionIndex.close`; also forgets the store for `redisHealth()`. */
  close(): Promise<void> {
    untrack(this);
    this.switch.close();
    this.acknowledging?.close();
    return this.events.close();
  }

  /** Session ids (SCAN over every master; never called on a request path). */
  override ids(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => this.index.sessionIds());
  }

  /** Number of sessions. */
  override length(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => (await this.index.sessionIds()).length);
  }

  /** Every session, each with its `id`. */
  override all(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, () => this.index.allSessions());
  }

  /** Deletes every session, companion hash and index of this store (not other keys). */
  override clear(cb?: StoreCallback): Promise<unknown> {
    return settle(cb, async () => {
      await this.index.clear();
      return null;
    });
  }
}
