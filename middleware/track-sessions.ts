/**
 * `trackSessions(store)`: records who a session is and where it came from, for the listings of
 * `listUserSessions()`. Mount it right after `session()`.
 *
 * At the end of each request (before express-session decides whether to save) it writes
 * `session.tracking`: `{ userId, createdAt, ip, userAgent }` when the session gains a user or
 * changes user (a login), and `lastActiveAt` at most once per `activityIntervalMs`. Requests in
 * between leave the session unmodified, so express-session does not save it.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { consoleLogger, type Logger, Warnings } from "../stores/core/logger.js";
import { fail, positiveInt, rejectUnknown } from "../stores/core/options.js";
import {
  type SessionTracking,
  TRACKING_FIELD,
  type UserSessionIndex,
} from "../stores/session/common.js";
import { normalizeIp } from "./client-key.js";

/** Options of `trackSessions()`. */
export interface TrackSessionsOptions {
  /** Least time between two `lastActiveAt` updates (each is one session write). @default 60000 */
  activityIntervalMs?: number;
  /** Longest `userAgent` kept, characters. @default 256 */
  maxUserAgentLength?: number;
  /** Where the one misuse warning goes. @default console */
  logger?: Logger;
}

/** Records login metadata and last activity in the session; see the module comment. */
export function trackSessions(
  store: UserSessionIndex,
  options: TrackSessionsOptions = {},
): RequestHandler {
  const scope = "trackSessions";
  if (typeof store?.userIdOf !== "function") {
    fail(scope, "store", "a UserSessionStore or MemorySessionStore", store);
  }
  rejectUnknown(scope, options, ["activityIntervalMs", "maxUserAgentLength", "logger"]);
  const logger = options.logger ?? consoleLogger;
  const warnings = new Warnings(logger);
  const interval = positiveInt(scope, "activityIntervalMs", options.activityIntervalMs, 60_000);
  const maxAgent = positiveInt(scope, "maxUserAgentLength", options.maxUserAgentLength, 256);

  const track = (req: Request) => {
    const session = req.session as (typeof req.session & Record<string, unknown>) | undefined;
    if (!session) return;
    let userId: string | undefined;
    try {
      userId = store.userIdOf(session);
    } catch {
      return; // the store rejects this user id when it saves; nothing to track
    }
    const tracked = session[TRACKING_FIELD] as SessionTracking | undefined;
    const now = Date.now();
    if (userId === undefined) {
      if (tracked !== undefined) delete session[TRACKING_FIELD]; // logged out
      return;
    }
    if (tracked?.userId !== userId) {
      const agent = req.get("user-agent");
      session[TRACKING_FIELD] = {
        userId,
        createdAt: now,
        lastActiveAt: now,
        ip: req.ip === undefined ? null : normalizeIp(req.ip, false), // ::ffff:1.2.3.4 → 1.2.3.4
        userAgent: agent === undefined ? null : agent.slice(0, maxAgent),
      } satisfies SessionTracking;
    } else if (now - tracked.lastActiveAt >= interval) {
      tracked.lastActiveAt = now;
    }
  };

  return function trackSessionsMiddleware(req: Request, res: Response, next: NextFunction) {
    if (!req.session) {
      warnings.once(
        "ERK_TRACK_WITHOUT_SESSION",
        "trackSessions() found no req.session: mount it after express-session's session()",
      );
      next();
      return;
    }
    const end = res.end;
    res.end = function trackedEnd(this: Response, ...args: unknown[]) {
      res.end = end;
      track(req);
      return (end as (...a: unknown[]) => Response).apply(this, args);
    } as Response["end"];
    next();
  };
}
