/**
 * The one answer of `onRedisError: "closed"` in every middleware: 503 with `Retry-After` (when
 * the feature tries Redis again, in whole seconds, at least 1) and a small JSON body; and the
 * same answer as an Express error handler, for what reaches `next(err)`.
 */
import type { ErrorRequestHandler, Response } from "express";
import { StoreUnavailableError } from "../stores/core/errors.js";

/** Answers 503 for `err` unless the response has already started. */
export function answerUnavailable(res: Response, err: StoreUnavailableError): void {
  if (res.headersSent) return;
  res.setHeader("Retry-After", String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
  res.status(503).json({ error: "Service Unavailable", code: err.code });
}

/**
 * An Express error handler for the features that hand their failures to `next(err)` (the
 * session store through express-session, your own calls to the primitives): a
 * `StoreUnavailableError` is answered like the middlewares answer `onRedisError: "closed"`
 * (503, `Retry-After`, `{ "error": "Service Unavailable", "code": "ERK_STORE_UNAVAILABLE" }`);
 * any other error goes on to the next error handler. One that arrives after the response was
 * sent (express-session saving at the end of a response) is dropped: the client has its
 * answer, and the feature already logged the outage once. Mount it after your routes:
 * `app.use(unavailableHandler())`.
 */
export function unavailableHandler(): ErrorRequestHandler {
  return function unavailableErrorHandler(err: unknown, _req, res, next) {
    if (err instanceof StoreUnavailableError) answerUnavailable(res, err);
    else next(err);
  };
}
