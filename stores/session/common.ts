/**
 * What the Redis session store and the memory one share: public types, input checks, the
 * opaque session handle and how a listing entry is read out of a session.
 */
import { createHash } from "node:crypto";
import type { SessionData } from "express-session";
import { InvalidOptionError } from "../core/errors.js";
import { show } from "../core/options.js";
import type { MessageHandler } from "../pubsub/pubsub.js";

/** The session field `trackSessions()` writes (and listings read). */
export const TRACKING_FIELD = "tracking";

/** Longest accepted session id. express-session's default ids are 32 characters. */
export const MAX_SESSION_ID_LENGTH = 256;

/** Longest accepted user id (after `String()`). */
export const MAX_USER_ID_LENGTH = 512;

/** Printable ASCII but braces (they would move a key's Cluster hash tag). */
const SESSION_ID = /^[!-z|~]+$/;

/** What `trackSessions()` records in a session. */
export interface SessionTracking {
  /** The user the session was tracked for (tracking restarts when it changes). */
  userId: string;
  /** When the session logged in (ms since the epoch). */
  createdAt: number;
  /** Last request seen, updated at most once per `activityIntervalMs`. */
  lastActiveAt: number;
  ip: string | null;
  userAgent: string | null;
}

/** One entry of `listUserSessions()`. */
export interface SessionInfo {
  /**
   * Opaque handle of the session (see `sessionHandle()`), not the session id: a listing shown
   * to a browser must not hand out the bearer ids of the user's other devices.
   */
  id: string;
  createdAt: number | null;
  lastActiveAt: number | null;
  /** When the session expires unless used again (ms since the epoch); null if it has no TTL. */
  expiresAt: number | null;
  ip: string | null;
  userAgent: string | null;
  /** True for the session whose id was passed as `currentSessionId`. */
  current: boolean;
}

/** Options of `listUserSessions()`. */
export interface ListSessionsOptions {
  /** The caller's own session id (`req.sessionID`), marked `current: true`. */
  currentSessionId?: string;
}

/** Options of `revokeUserSessions()`. */
export interface RevokeSessionsOptions {
  /** A session id (`req.sessionID`) to keep: "log out everywhere else". */
  except?: string;
}

/** The message published on `session.revoked`. */
export interface SessionRevokedEvent {
  userId: string;
  /** The revoked session's handle (`sessionHandle(req.sessionID)` on a live connection). */
  sessionId: string;
  /** `revoked` by a call, or `evicted` past `maxSessionsPerUser`. */
  reason: "revoked" | "evicted";
}

/** Counters since the store was created. */
export interface SessionStoreStats {
  /** Sessions that gained an owner (logins). */
  created: number;
  /** Sessions revoked (one, all, or evicted past `maxSessionsPerUser`). */
  revoked: number;
  /** Writes refused because the id had been destroyed or revoked (a request in flight). */
  refusedWrites: number;
}

/** The per-user index API both session stores implement (what `trackSessions()` needs). */
export interface UserSessionIndex {
  /** The owner of a session as `userId(session)` sees it, checked; undefined for none. */
  userIdOf(session: Partial<SessionData>): string | undefined;
  /** The user's live sessions, newest activity first. */
  listUserSessions(userId: string | number, options?: ListSessionsOptions): Promise<SessionInfo[]>;
  /** Revokes the session with this handle if it belongs to `userId`; resolves true if it did. */
  revokeSession(userId: string | number, id: string): Promise<boolean>;
  /** Revokes every session of `userId` (but `except`); resolves with how many. */
  revokeUserSessions(userId: string | number, options?: RevokeSessionsOptions): Promise<number>;
  /** Calls `handler` for every revocation (every process, over pub/sub); resolves with an unsubscribe. */
  onRevoked(handler: MessageHandler<SessionRevokedEvent>): Promise<() => Promise<void>>;
  stats(): SessionStoreStats;
  /** Closes the store's pub/sub subscriber (the Redis client is the caller's). */
  close(): Promise<void>;
}

/** express-session's store callbacks (their data types differ per method). */
// biome-ignore lint/suspicious/noExplicitAny: each Store method's callback takes a different type
export type StoreCallback = (err?: unknown, data?: any) => any;

/** connect-redis's convention: every store method returns a promise and also calls `cb`. */
export async function settle<T>(
  cb: StoreCallback | undefined,
  work: () => T | Promise<T>,
): Promise<unknown> {
  let result: T;
  try {
    result = await work();
  } catch (err) {
    if (cb) return cb(err, null);
    throw err;
  }
  return cb ? cb(null, result) : result;
}

/** Shortest life of a tombstone (it otherwise lives as long as the session could have). */
export const TOMBSTONE_MS = 60_000;

/** True for what `sessionHandle()` returns (22 base64url characters). */
export function isHandle(id: unknown): id is string {
  return typeof id === "string" && /^[A-Za-z0-9_-]{22}$/.test(id);
}

/** The checked arguments of `revokeUserSessions()`: the user id, and `except` ("" for none). */
export function revokeArgs(
  userId: unknown,
  options: RevokeSessionsOptions,
): { uid: string; except: string } {
  const uid = checkUserId("revokeUserSessions", userId);
  const except =
    options.except === undefined ? "" : checkSessionId("revokeUserSessions", options.except);
  return { uid, except };
}

/** The message published when session `sid` of `userId` is revoked. */
export function revokedEvent(
  userId: string,
  sid: string,
  reason: SessionRevokedEvent["reason"],
): SessionRevokedEvent {
  return { userId, sessionId: sessionHandle(sid), reason };
}

/**
 * The TTL in ms of a session being written, as connect-redis computes it: `ttl(session)` when
 * `ttl` is a function, else whole seconds to `cookie.expires`, else `ttl` seconds.
 */
export function ttlMsOf(
  ttl: number | ((session: SessionData) => number),
  session: SessionData,
): number {
  if (typeof ttl === "function") return Math.ceil(ttl(session) * 1000);
  const expires = session?.cookie?.expires;
  if (expires) return Math.ceil((Number(new Date(expires)) - Date.now()) / 1000) * 1000;
  return ttl * 1000;
}

/**
 * `touch` leaves a TTL alone when the expiry it would set is within this of the one the read
 * already set: the contract is "the TTL follows the session", to the second as connect-redis
 * sets it (whole seconds).
 */
export const TOUCH_SLACK_MS = 1000;

/** The envelope type revocations are published with. */
export const REVOKED_TYPE = "session.revoked";

/**
 * The opaque handle listings show for a session id: 22 characters of its SHA-256, stable and
 * not reversible, so it can name a session in a page without being usable as a cookie.
 */
export function sessionHandle(sessionId: string): string {
  return createHash("sha256").update(sessionId).digest("base64url").slice(0, 22);
}

/** True for an id a store accepts: 1–256 printable ASCII characters other than `{` and `}`. */
export function isValidSessionId(sid: unknown): sid is string {
  return (
    typeof sid === "string" &&
    sid.length > 0 &&
    sid.length <= MAX_SESSION_ID_LENGTH &&
    SESSION_ID.test(sid)
  );
}

/** Throws `InvalidOptionError` naming `method`'s session id argument unless it is valid. */
export function checkSessionId(method: string, sid: unknown): string {
  if (!isValidSessionId(sid)) {
    // Never echoed: a session id is a bearer credential, and errors reach logs.
    const got = typeof sid === "string" ? `${sid.length} characters` : typeof sid;
    throw new InvalidOptionError(
      `${method}: session id must be 1-${MAX_SESSION_ID_LENGTH} printable ASCII characters other than { and } (got ${got})`,
      "sessionId",
    );
  }
  return sid;
}

/**
 * A user id as a string: a non-empty string, a finite number, a bigint, or an object with its
 * own `toString()` (a MongoDB ObjectId), at most 512 characters.
 */
export function checkUserId(method: string, value: unknown): string {
  let id: unknown = value;
  if ((typeof value === "number" && Number.isFinite(value)) || typeof value === "bigint") {
    id = String(value);
  } else if (
    typeof value === "object" &&
    value !== null &&
    value.toString !== Object.prototype.toString
  ) {
    id = String(value);
  }
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_USER_ID_LENGTH) {
    throw new InvalidOptionError(
      `${method}: user id must be a non-empty string or a finite number of at most ${MAX_USER_ID_LENGTH} characters (got ${show(value)})`,
      "userId",
    );
  }
  return id;
}

/** The default `userId(session)`: `session.userId ?? session.user?.id`. */
export function defaultUserId(session: Partial<SessionData>): unknown {
  const s = session as { userId?: unknown; user?: { id?: unknown } | null };
  return s.userId ?? (typeof s.user === "object" && s.user !== null ? s.user.id : undefined);
}

/** Reads `userId(session)`: undefined/null mean "no owner", anything else must be a valid id. */
export function ownerOf(
  userId: (session: Partial<SessionData>) => unknown,
  session: Partial<SessionData>,
): string | undefined {
  const value = userId(session);
  if (value === undefined || value === null) return undefined;
  return checkUserId("userId(session)", value);
}

/** A listing entry for session `sid` stored as `session`, expiring at `expiresAt`. */
export function toInfo(
  sid: string,
  session: unknown,
  expiresAt: number | null,
  currentSessionId: string | undefined,
): SessionInfo {
  const t = (session as Record<string, unknown> | null)?.[TRACKING_FIELD] as
    | Partial<SessionTracking>
    | undefined;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: sessionHandle(sid),
    createdAt: num(t?.createdAt),
    lastActiveAt: num(t?.lastActiveAt),
    expiresAt,
    ip: str(t?.ip),
    userAgent: str(t?.userAgent),
    current: sid === currentSessionId,
  };
}

/** Newest activity first (then login time, then expiry); sessions never tracked last. */
export function byActivity(a: SessionInfo, b: SessionInfo): number {
  const key = (s: SessionInfo) => s.lastActiveAt ?? s.createdAt ?? -1;
  return key(b) - key(a) || (b.expiresAt ?? Infinity) - (a.expiresAt ?? Infinity);
}
