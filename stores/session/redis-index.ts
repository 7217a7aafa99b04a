/**
 * The per-user index side of `UserSessionStore`: key names, deleting with a tombstone, listing,
 * revoking one or all of a user's sessions, and publishing revocations. The order of steps on
 * Cluster is explained in scripts.ts.
 */

import type { RedisDriver } from "../core/driver.js";
import { toError } from "../core/errors.js";
import { taggedKey } from "../core/keys.js";
import type { Logger } from "../core/logger.js";
import type { PubSub } from "../pubsub/pubsub.js";
import {
  byActivity,
  checkUserId,
  isHandle,
  type ListSessionsOptions,
  REVOKED_TYPE,
  type RevokeSessionsOptions,
  revokeArgs,
  revokedEvent,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  sessionHandle,
  TOMBSTONE_MS,
  toInfo,
} from "./common.js";
import { KILL, KILL_ALL, PEEK } from "./scripts.js";

/**
 * Runs one Redis call through the store's `BackendSwitch`: within `timeoutMs`, or rejected
 * with `StoreUnavailableError` (at once while Redis is known to be failing).
 */
export type Call = <T>(op: (redis: RedisDriver) => Promise<T>) => Promise<T>;

/** What the index needs of its store. */
export interface IndexContext {
  /** True on a Redis Cluster. */
  isCluster: boolean;
  /** Every Redis call goes through here. */
  call: Call;
  /** Writes that must survive a failover (the session's deletion): `call`, or one that WAITs. */
  write: Call;
  /** The client's `keyPrefix` ("" without). */
  keyPrefix: string;
  prefix: string;
  indexPrefix: string;
  scanCount: number;
  parse: (text: string) => unknown;
  logger: Logger;
  counters: SessionStoreStats;
  events: PubSub;
  channel: string;
}

/** See the module comment. */
export class RedisIndex {
  /** 1 on a standalone Redis: each operation is one script that also updates the index. */
  readonly inline: 0 | 1;

  constructor(private readonly c: IndexContext) {
    this.inline = c.isCluster ? 0 : 1;
  }

  sessionKey(sid: string): string {
    return this.c.prefix + sid;
  }

  /** The companion hash: its hash tag is the whole session key, so it shares its slot. */
  metaKey(sid: string): string {
    return `{${this.c.keyPrefix}${this.c.prefix}${sid}}:m`;
  }

  indexKey(userId: string): string {
    return taggedKey(this.c.indexPrefix, userId);
  }

  /** A full key name (as stored in the companion hash) without the client's keyPrefix. */
  strip(full: string): string {
    const kp = this.c.keyPrefix;
    return kp && full.startsWith(kp) ? full.slice(kp.length) : full;
  }

  /**
   * Session first, then (on Cluster) its index entry. Returns 1 when it was `owner`'s (or any,
   * for `""`), 0 when someone else's (nothing done), 2 when it had no owner (tombstoned).
   */
  async kill(sid: string, owner: string): Promise<number> {
    const keys = [this.sessionKey(sid), this.metaKey(sid)];
    const [done, index] = (await this.c.write((d) =>
      KILL.run(d, keys, [owner, TOMBSTONE_MS, sid, this.inline]),
    )) as [number, string?];
    if (!this.inline && index) await this.zrem(this.strip(index), [sid]);
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
    const full = this.c.keyPrefix + index;
    const ids = await this.members(index);
    const now = Date.now();
    const found = await Promise.all(
      ids.map(async (sid) => {
        const keys = [this.sessionKey(sid), this.metaKey(sid)];
        const reply = (await this.c.call((d) => PEEK.run(d, keys, []))) as
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
      return await this.c.parse(text);
    } catch (err) {
      this.c.logger.warn(
        `UserSessionStore: session ${sessionHandle(sid)} does not parse: ${toError(err).message}`,
      );
      return undefined;
    }
  }

  /** See `UserSessionIndex.revokeSession`; `id` is the handle a listing shows. */
  async revokeSession(userId: string | number, id: string): Promise<boolean> {
    const uid = checkUserId("revokeSession", userId);
    if (!isHandle(id)) return false;
    const ids = await this.members(this.indexKey(uid));
    const sid = ids.find((candidate) => sessionHandle(candidate) === id);
    return sid === undefined ? false : this.revokeId(uid, sid, "revoked");
  }

  async revokeId(
    uid: string,
    sid: string,
    reason: SessionRevokedEvent["reason"],
  ): Promise<boolean> {
    const index = this.indexKey(uid);
    const done = await this.kill(sid, this.c.keyPrefix + index);
    if (done === 2) await this.zrem(index, [sid]); // no owner: tombstoned, a dead entry
    if (done !== 1) return false; // 0: someone else's now; their revoke, not this one
    this.c.counters.revoked++;
    await this.announce(uid, [sid], reason);
    return true;
  }

  /** See `UserSessionIndex.revokeUserSessions`. */
  async revokeUserSessions(
    userId: string | number,
    options: RevokeSessionsOptions = {},
  ): Promise<number> {
    const { uid, except } = revokeArgs(userId, options);
    const index = this.indexKey(uid);
    const full = this.c.keyPrefix + index;
    let revoked: string[] = [];
    if (this.inline) {
      const args = [full, this.c.keyPrefix + this.c.prefix, except, TOMBSTONE_MS, this.c.keyPrefix];
      revoked = (await this.c.write((d) => KILL_ALL.run(d, [index], args))) as string[];
    } else {
      // Sessions written while this runs are indexed first, so a second pass catches them.
      const foreign = new Set<string>([except]);
      for (let pass = 0; pass < 3; pass++) {
        const ids = await this.members(index);
        const targets = ids.filter((sid) => !foreign.has(sid));
        if (!targets.length) break;
        const done = await Promise.all(targets.map((sid) => this.kill(sid, full)));
        const dead = targets.filter((_, i) => done[i] === 2);
        if (dead.length) await this.zrem(index, dead);
        for (const [i, sid] of targets.entries()) {
          if (done[i] === 1) revoked.push(sid);
          if (done[i] === 0) foreign.add(sid); // someone else's now: left to score pruning
        }
      }
    }
    this.c.counters.revoked += revoked.length;
    await this.announce(uid, revoked, "revoked");
    return revoked.length;
  }

  private async announce(uid: string, sids: string[], reason: SessionRevokedEvent["reason"]) {
    for (const sid of sids) {
      try {
        await this.c.events.publish(this.c.channel, revokedEvent(uid, sid, reason), REVOKED_TYPE);
      } catch (err) {
        this.c.logger.warn(`UserSessionStore: revocation not published: ${toError(err).message}`);
      }
    }
  }

  /** Removes `sids` from index `key` (its name without keyPrefix). */
  zrem(key: string, sids: string[]): Promise<unknown> {
    return this.c.call((d) => d.command("ZREM", [key], sids));
  }

  /** The session ids in index `key`. */
  private async members(key: string): Promise<string[]> {
    const ids = await this.c.call((d) => d.command("ZRANGE", [key], [0, -1]));
    return (ids as unknown[]).map(String);
  }

  /** Every session id (SCAN over every master). */
  async sessionIds(): Promise<string[]> {
    const len = this.c.prefix.length;
    return (await this.scanKeys(`${this.c.prefix}*`)).map((key) => key.slice(len));
  }

  /** Every session, parsed, each with its `id`. */
  async allSessions(): Promise<unknown[]> {
    const ids = await this.sessionIds();
    const values = await Promise.all(
      ids.map((sid) => this.c.call((d) => d.command("GET", [this.sessionKey(sid)]))),
    );
    const sessions: unknown[] = [];
    for (const [i, value] of values.entries()) {
      if (value === null) continue;
      const session = (await this.c.parse(String(value))) as { id?: string };
      session.id = ids[i];
      sessions.push(session);
    }
    return sessions;
  }

  /** Deletes every session, companion hash and index of this store (not other keys). */
  async clear(): Promise<void> {
    const keys = [
      ...(await this.scanKeys(`${this.c.prefix}*`)),
      ...(await this.scanKeys(`{${this.c.keyPrefix}${this.c.prefix}*`)),
      ...(await this.scanKeys(`${this.c.indexPrefix}*`)),
    ];
    await Promise.all(keys.map((key) => this.c.call((d) => d.command("UNLINK", [key]))));
  }

  /** Every key matching `pattern` (without keyPrefix) on every master, keyPrefix stripped. */
  async scanKeys(pattern: string): Promise<string[]> {
    const match = this.c.keyPrefix + pattern;
    const keys: string[] = [];
    for (const node of await this.c.call((d) => d.masters())) {
      let cursor = "0";
      do {
        const page = ["SCAN", cursor, "MATCH", match, "COUNT", this.c.scanCount];
        const reply = (await this.c.call(() => node.command(page))) as [unknown, unknown[]];
        cursor = String(reply[0]);
        for (const key of reply[1]) keys.push(this.strip(String(key)));
      } while (cursor !== "0");
    }
    return keys;
  }
}
