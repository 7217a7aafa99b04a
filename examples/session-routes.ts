/**
 * The example's session routes: the user's sessions (list, revoke one, log out everywhere
 * else) and `/events`, the user's live stream, which a revocation of its session ends.
 */
import type express from "express";
import type { NextFunction, Request, Response } from "express";
import {
  type MemorySessionStore,
  type PubSub,
  type SseConnection,
  sessionHandle,
  sse,
  type UserSessionStore,
} from "../index.js";

/** A route handler that may return a promise. */
type Handler = (req: Request, res: Response, next: NextFunction) => Promise<void> | void;
/** Passes a rejected promise to the error handler. */
export const route =
  (fn: Handler): express.RequestHandler =>
  (req, res, next) => {
    Promise.resolve(fn(req, res, next)).catch(next);
  };
/** The signed-in user of `req`, if any. */
export const userOf = (req: Request) => (req.session as { userId?: string } | undefined)?.userId;

/** What the session routes need from the app. */
export interface SessionRouteDeps {
  sessions: UserSessionStore | MemorySessionStore;
  pubsub: PubSub;
  /** The pub/sub channel of a user's events. */
  channelOf: (user: string) => string;
  signedIn: express.RequestHandler;
}

/** Mounts the session routes on `app`. */
export function mountSessionRoutes(
  app: express.Express,
  { sessions, pubsub, channelOf, signedIn }: SessionRouteDeps,
): void {
  app.get(
    "/api/sessions",
    signedIn,
    route(async (req, res) => {
      res.json(await sessions.listUserSessions(userOf(req)!, { currentSessionId: req.sessionID }));
    }),
  );

  app.delete(
    "/api/sessions/:id",
    signedIn,
    route(async (req, res) => {
      res.json({ revoked: await sessions.revokeSession(userOf(req)!, String(req.params.id)) });
    }),
  );

  app.post(
    "/api/sessions/revoke-others",
    signedIn,
    route(async (req, res) => {
      res.json({
        revoked: await sessions.revokeUserSessions(userOf(req)!, { except: req.sessionID }),
      });
    }),
  );

  // The user's live events; a revocation of this very session logs the page out.
  app.get(
    "/events",
    signedIn,
    route(async (req, res) => {
      const sid = req.sessionID;
      const user = userOf(req)!;
      const mine = sessionHandle(sid);
      let stream: SseConnection | undefined;
      let revoked = false;
      const loggedOut = () => {
        revoked = true;
        stream?.send("session.revoked", { userId: user, sessionId: mine });
        void stream?.close();
      };
      // Listening before the stream opens, so a revocation in between is not missed.
      const off = await sessions.onRevoked((message) => {
        if (message.data.sessionId === mine) loggedOut();
      });
      try {
        stream = await sse(req, res, { pubsub, channels: [channelOf(user)] });
      } catch (err) {
        await off();
        throw err;
      }
      if (revoked) loggedOut();
      // Pub/sub is at-most-once: check now and then that the session still holds this user
      // (a missed revocation, or a logout in another tab of this browser).
      const recheck = setInterval(() => {
        sessions.get(sid, (err: unknown, session: unknown) => {
          if (!err && (session as { userId?: string } | null)?.userId !== user) loggedOut();
        });
      }, 30_000);
      recheck.unref();
      void stream.closed.then(() => {
        clearInterval(recheck);
        return off();
      });
    }),
  );
}
