/**
 * `UserSessionStore`: connect-redis's `RedisStore` (same keys, values, TTLs and callbacks) with
 * a per-user index, tombstones against resurrection and one round trip per request.
 *
 * Round trips: a read (`get`) is one script that also refreshes the TTL the way express-session's
 * `touch` would at the end of the request (with the default JSON serializer and a numeric
 * `ttl`). `touch` then sends nothing when the session it is given asks for the expiry that
 * read set (within a second); when it asks for another one ("remember me":
 * `cookie.maxAge` changed without changing the session) it sets that, as connect-redis does.
 * A write (`set`) is one script on a standalone Redis; on Cluster it is two (index, then
 * session). See scripts.ts.
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
import type { RedisClient } from "../core/scripts.js";
import { createPubSub, type MessageHandler, type PubSub } from "../pubsub/pubsub.js";
import {
  checkSessionId,
  deliver,
  isValidSessionId,
  type ListSessionsOptions,
  ownerOf,
  type RevokeSessionsOptions,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  type StoreCallback,
  settle,
  settled,
  TOUCH_SLACK_MS,
  ttlMsOf,
  type UserSessionIndex,
} from "./common.js";
import { parseUserSessionStoreOptions, type UserSessionStoreOptions } from "./options.js";
import { ReadExpiry } from "./read-expiry.js";
import { type Call, RedisIndex } from "./redis-index.js";
import { BUMP, INDEX_PUT, READ, SEEN, WRITE } from "./scripts.js";

/**
 * `READ`'s reply: value, TTL set (ms); on Cluster when the index lags, also the index, the new
 * expiry and the expiry the index held.
 */
type ReadReply = [string | null, number, string?, number?, string?];

/** The switch's answer as it is (`runThen`'s mapping). */
const same = <T>(value: T): T => value;

/** The switch's answer in mode `open`, which this store never runs in (only `closed`). */
const unanswered = (): never => {
  throw new Error("UserSessionStore: the failure switch answered as in mode open");
};

/** A session store for express-session with "list / revoke / log out everywhere" per user. */
export class UserSessionStore extends RedisStore implements UserSessionIndex {
  /** The client given as `redis` (or `client`). */
  readonly redis: RedisClient;
  private readonly cfg: ReturnType<typeof parseUserSessionStoreOptions>;
  /** `json` when reads refresh the TTL themselves (touch free), `none` otherwise. */
  private readonly readMode: "json" | "none";
  /** The TTL a read sets when the session has no `cookie.originalMaxAge` (0 for none). */
  private readonly readTtlMs: number;
  /** `READ`'s ARGV but the session id, for `get` (strings: nothing to convert per call). */
  private readonly readArgs: [string, string, string, string];
  private readonly switch: BackendSwitch<RedisDriver>;
  /** Every Redis call goes through the switch (see the module comment). */
  private readonly call: Call;
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
    this.call = (op) => this.switch.runThen(op, same, unanswered);
    this.events = createPubSub({ redis: this.redis, logger: cfg.logger }, "UserSessionStore");
    // Channels are not keyPrefixed by the clients: apps sharing a Redis keep their events apart.
    this.channel = `${cfg.keyPrefix}${cfg.indexPrefix}revoked`;
    this.index = new RedisIndex({
      isCluster: cfg.client.isCluster,
      call: this.call,
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
    this.readArgs = [this.readMode, String(this.readTtlMs), String(this.index.inline), "1"];
    track("sessions", cfg.prefix, this, cfg.client);
  }

  /** The owner of `session` per the `userId` option (checked), or undefined. */
  userIdOf(session: Partial<SessionData>): string | undefined {
    return ownerOf(this.cfg.userId, session);
  }

  /** Reads a session; a malformed id is a miss. Refreshes its TTL (see the module comment). */
  override get(sid: string, cb?: StoreCallback): Promise<unknown> {
    if (!isValidSessionId(sid)) return settle(cb, () => null);
    const sent = Date.now();
    // One continuation after the script's: parse, mark, call back (more only on Cluster with a
    // lagging index, or with an async serializer).
    return this.read(sid).then(
      (reply) => deliver(cb, () => this.loaded(sid, sent, reply as ReadReply | null)),
      cb && ((err) => cb(err, null)),
    );
  }

  /**
   * `get`'s script. Built apart from `get`: the switch holds the functions it is given (and
   * what they close over) until the call's deadline passes, a second after it was answered;
   * closures that share `get`'s scope would keep `cb`, and through it the whole request.
   */
  private read(sid: string): Promise<unknown> {
    const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
    const a = this.readArgs;
    const args = [a[0], a[1], a[2], a[3], sid];
    return this.call((d) => READ.run(d, keys, args));
  }

  /**
   * A read's session, parsed and marked with the expiry the read set: at once, or a promise
   * (Cluster with a lagging index: moved first; an async serializer).
   */
  private loaded(sid: string, sent: number, reply: ReadReply | null): unknown {
    if (reply === null) return null;
    const [value, ttl, index, expiry, before] = reply;
    if (index !== undefined && expiry !== undefined) {
      return this.bump(index, sid, expiry, before ?? "").then(() =>
        this.loaded(sid, sent, [value, ttl]),
      );
    }
    const session: unknown = this.serializer.parse(value as string);
    if (typeof (session as { then?: unknown } | null)?.then === "function") {
      return Promise.resolve(session).then((s) => this.tagged(s, sent, ttl));
    }
    return this.tagged(session, sent, ttl);
  }

  /** `session`, marked with the expiry its read set (`ttl` ms from `sent`; 0: none set). */
  private tagged(session: unknown, sent: number, ttl: number): unknown {
    if (ttl > 0 && typeof session === "object" && session !== null) {
      ReadExpiry.set(session, this, sent + ttl);
    }
    return session;
  }

  /**
   * express-session turns what `get` returned into its `req.session` here: the expiry that
   * read set follows, so `touch` can tell whether it has anything to do.
   */
  override createSession(req: Parameters<RedisStore["createSession"]>[0], sess: SessionData) {
    const created = super.createSession(req, sess);
    const expiry = ReadExpiry.get(sess, this);
    if (expiry !== undefined) ReadExpiry.set(created, this, expiry);
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
        evict = (await this.call((d) => INDEX_PUT.run(d, [index], args))) as string[];
      }
      const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
      if (index !== undefined && inline) keys.push(index);
      const args = [value, ttlArg, full, max, sid, inline];
      const reply = (await this.call((d) => WRITE.run(d, keys, args))) as [
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
   * connect-redis does. Free (no command, no async frame) when the read that returned `sess`
   * already set that expiry, within a second; a past expiry deletes the session, as in `set`.
   */
  override touch(sid: string, sess: SessionData, cb?: StoreCallback): Promise<unknown> {
    if (this.cfg.disableTouch || this.cfg.disableTTL || !isValidSessionId(sid)) {
      return settled(cb);
    }
    const read = ReadExpiry.get(sess, this);
    let ttl: number;
    try {
      ttl = ttlMsOf(this.ttl, sess);
    } catch (err) {
      return settle(cb, () => Promise.reject(err)); // a throwing `ttl(session)`
    }
    if (ttl > 0 && read !== undefined && Math.abs(Date.now() + ttl - read) <= TOUCH_SLACK_MS) {
      return settled(cb);
    }
    return settle(cb, () => this.refresh(sid, sess, ttl, read !== undefined));
  }

  /** `touch` with something to do: set the TTL (`ttl` ms) or, past expiry, delete. */
  private async refresh(sid: string, sess: SessionData, ttl: number, tagged: boolean) {
    if (ttl <= 0) {
      await this.index.kill(sid, "");
      return null;
    }
    const now = Date.now();
    const keys = [this.index.sessionKey(sid), this.index.metaKey(sid)];
    const args = ["fixed", ttl, this.index.inline, 0, sid];
    const reply = (await this.call((d) => READ.run(d, keys, args))) as ReadReply | null;
    if (reply === null) return null;
    const [, , index, expiry, before] = reply;
    if (index !== undefined && expiry !== undefined) {
      await this.bump(index, sid, expiry, before ?? "");
    }
    if (tagged) ReadExpiry.set(sess, this, now + ttl); // a second touch: free
    return null;
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
