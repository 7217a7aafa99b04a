/**
 * The one answer of `onRedisError: "closed"` in every middleware: 503 with `Retry-After` (when
 * the feature tries Redis again, in whole seconds, at least 1) and a small JSON body.
 */
import type { Response } from "express";
import type { StoreUnavailableError } from "../stores/core/errors.js";

/** Answers 503 for `err` unless the response has already started. */
export function answerUnavailable(res: Response, err: StoreUnavailableError): void {
  if (res.headersSent) return;
  res.setHeader("Retry-After", String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
  res.status(503).json({ error: "Service Unavailable", code: err.code });
}
