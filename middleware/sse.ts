/**
 * `sse(req, res, { pubsub, channels })`: streams pub/sub messages to a browser as
 * Server-Sent Events.
 *
 * Every connection adds a handler to the given `PubSub`, which holds one Redis subscription per
 * channel for the whole process (reference-counted) and drops it when the last connection
 * leaves. Heartbeat comments keep proxies from closing idle streams. A client that does not
 * read (its socket buffer past `maxBufferedBytes`) is dropped rather than buffered without
 * bound; its `EventSource` reconnects when it can.
 */
import type { Request, Response } from "express";
import { InvalidOptionError } from "../stores/core/errors.js";
import { fail, positiveInt, rejectUnknown } from "../stores/core/options.js";
import type { Envelope, PubSub } from "../stores/pubsub/pubsub.js";

/** Options of `sse()`. */
export interface SseOptions {
  /** Where messages come from (`createPubSub()`). */
  pubsub: PubSub;
  /** Channels to forward (1–32). */
  channels: readonly string[];
  /** Comment sent when nothing else was, ms. @default 15000 */
  heartbeatMs?: number;
  /** A client whose unsent output passes this is dropped, bytes. @default 1048576 */
  maxBufferedBytes?: number;
  /** Reconnection delay suggested to the browser (`retry:`), ms. @default 2000 */
  retryMs?: number;
  /** Forward only messages this returns true for (e.g. only the user's session). */
  filter?: (message: Envelope, channel: string) => boolean;
}

/** One open stream. */
export interface SseConnection {
  /** Sends an event of your own (`event: type`, `data: JSON`); false once closed. */
  send(type: string, data: unknown): boolean;
  /** Ends the stream and unsubscribes. */
  close(): Promise<void>;
  /** Resolves once the stream is closed (by either side), with why. */
  readonly closed: Promise<"client" | "server" | "slow">;
}

/** Counters since the process started. */
export interface SseStats {
  open: number;
  /** Clients dropped because they did not read. */
  dropped: number;
  sent: number;
}

const counters: SseStats = { open: 0, dropped: 0, sent: 0 };

/** Counters of every `sse()` stream in this process. */
export function sseStats(): SseStats {
  return { ...counters };
}

/** Opens a Server-Sent Events stream on `res`; see the module comment. */
export async function sse(
  req: Request,
  res: Response,
  options: SseOptions,
): Promise<SseConnection> {
  const scope = "sse";
  rejectUnknown(scope, options, [
    "pubsub",
    "channels",
    "heartbeatMs",
    "maxBufferedBytes",
    "retryMs",
    "filter",
  ]);
  const { pubsub, channels, filter } = options;
  if (typeof pubsub?.subscribe !== "function")
    fail(scope, "pubsub", "a createPubSub() instance", pubsub);
  if (
    !Array.isArray(channels) ||
    channels.length === 0 ||
    channels.length > 32 ||
    !channels.every((c) => typeof c === "string" && c.length > 0)
  ) {
    throw new InvalidOptionError(`${scope}: channels must be 1-32 non-empty strings`, "channels");
  }
  if (filter !== undefined && typeof filter !== "function")
    fail(scope, "filter", "a function", filter);
  const heartbeatMs = positiveInt(scope, "heartbeatMs", options.heartbeatMs, 15_000);
  const maxBuffered = positiveInt(scope, "maxBufferedBytes", options.maxBufferedBytes, 1 << 20);
  const retryMs = positiveInt(scope, "retryMs", options.retryMs, 2_000);

  let open = true;
  let resolveClosed!: (why: "client" | "server" | "slow") => void;
  const closed = new Promise<"client" | "server" | "slow">((resolve) => {
    resolveClosed = resolve;
  });
  const unsubscribes: (() => Promise<void>)[] = [];
  let heartbeat: NodeJS.Timeout | undefined;

  const finish = async (why: "client" | "server" | "slow") => {
    if (!open) return;
    open = false;
    counters.open--;
    if (why === "slow") counters.dropped++;
    clearInterval(heartbeat);
    res.off("close", onClose);
    if (why === "slow") res.destroy();
    else if (!res.writableEnded) res.end();
    await Promise.all(unsubscribes.map((off) => off().catch(() => {})));
    resolveClosed(why);
  };
  const onClose = () => void finish("client");
  const write = (chunk: string): boolean => {
    if (!open) return false;
    res.write(chunk);
    if (res.writableLength > maxBuffered) {
      void finish("slow");
      return false;
    }
    return true;
  };
  const event = (id: string | undefined, type: string, data: string) => {
    // Fields are lines: a CR, LF or NUL in an id or a name would start a forged field (or
    // event), so such ids are left out and such names cleaned. Data is one JSON line.
    const name = type.replace(/[\r\n\0]/g, " ");
    const idLine = id && !/[\r\n\0]/.test(id) ? `id: ${id}\n` : "";
    if (write(`${idLine}event: ${name}\ndata: ${data}\n\n`)) counters.sent++;
  };

  res.status(200);
  res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
  res.setHeader("Cache-Control", "no-cache, no-transform");
  res.setHeader("X-Accel-Buffering", "no"); // nginx: do not buffer the stream
  if (req.httpVersionMajor === 1) res.setHeader("Connection", "keep-alive");
  res.flushHeaders();
  counters.open++;
  res.on("close", onClose);
  heartbeat = setInterval(() => write(": ping\n\n"), heartbeatMs);
  heartbeat.unref();
  // The client may have left already (before this call, its close event has fired).
  if (req.destroyed || res.destroyed || res.writableEnded) void finish("client");

  try {
    for (const channel of channels) {
      const off = await pubsub.subscribe(channel, (message, name) => {
        if (filter === undefined || filter(message, name)) {
          event(message.id, message.type, JSON.stringify(message));
        }
      });
      if (open) unsubscribes.push(off);
      else await off(); // the client left while we subscribed
    }
  } catch (err) {
    await finish("server");
    throw err;
  }
  write(`retry: ${retryMs}\n: connected\n\n`); // subscribed: what is published now arrives

  return {
    send(type, data) {
      if (!open) return false;
      event(undefined, type, JSON.stringify(data) ?? "null");
      return open;
    },
    close: () => finish("server"),
    closed,
  };
}
