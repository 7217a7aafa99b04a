/**
 * Captures what a handler writes, while passing every byte to the client unchanged.
 *
 * `writeHead`, `write` and `end` are wrapped on the one response object. The first of them
 * asks `decide()` (status and headers are final then): `"capture"` buffers the body up to
 * `maxBytes`, `"pass"` only passes it through, and `"replace"` means the caller has already
 * answered (a stale entry instead of an error) and whatever the handler writes is dropped.
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";

/** What `decide()` answers. */
export type Decision = "capture" | "pass" | "replace";

/** The original methods, for the caller to answer with when it replaces the response. */
export interface Originals {
  writeHead: ServerResponse["writeHead"];
  write: ServerResponse["write"];
  end: ServerResponse["end"];
}

type Callback = (err?: Error | null) => void;

/** See the module comment. */
export class ResponseCapture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private decision: Decision | undefined;
  /** True once the body passed `maxBytes` (nothing more is buffered). */
  overflowed = false;
  readonly originals: Originals;

  constructor(
    res: ServerResponse,
    private readonly maxBytes: number,
    private readonly decide: (originals: Originals) => Decision,
  ) {
    const originals = { writeHead: res.writeHead, write: res.write, end: res.end };
    this.originals = originals;
    const self = this;

    res.writeHead = function writeHead(this: ServerResponse, status: number, ...rest: unknown[]) {
      if (self.decision === "replace") return this;
      let message: string | undefined;
      let headers: unknown;
      if (typeof rest[0] === "string") [message, headers] = rest;
      else [headers] = rest;
      // Fold headers given here into the response, so the decision sees them.
      if (Array.isArray(headers)) {
        const flat = Array.isArray(headers[0]) ? (headers as string[][]).flat() : headers;
        for (let i = 0; i + 1 < flat.length; i += 2) {
          this.appendHeader(String(flat[i]), String(flat[i + 1]));
        }
      } else if (headers !== undefined && headers !== null) {
        for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
          if (value !== undefined) this.setHeader(name, value);
        }
      }
      this.statusCode = status;
      if (self.decide_() === "replace") return this;
      const head = originals.writeHead as (...args: unknown[]) => ServerResponse;
      return message === undefined ? head.call(this, status) : head.call(this, status, message);
    } as ServerResponse["writeHead"];

    res.write = function write(this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      if (!this.headersSent && self.decide_() === "replace") return self.swallow(rest);
      if (self.decision === "replace") return self.swallow(rest);
      self.keep(chunk, rest[0]);
      return (originals.write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse["write"];

    res.end = function end(this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (!this.headersSent && self.decide_() === "replace") {
        self.swallow([chunk, ...rest]);
        return this;
      }
      if (self.decision === "replace") {
        self.swallow([chunk, ...rest]);
        return this;
      }
      if (typeof chunk !== "function") self.keep(chunk, rest[0]);
      return (originals.end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as ServerResponse["end"];
  }

  /** True when the body was captured whole. */
  get complete(): boolean {
    return this.decision === "capture" && !this.overflowed;
  }

  /** The captured body. */
  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }

  /** Stops buffering (e.g. the response turned out not storable after all). */
  stop(): void {
    this.overflowed = true;
    this.chunks.length = 0;
  }

  private decide_(): Decision {
    this.decision ??= this.decide(this.originals);
    return this.decision;
  }

  private keep(chunk: unknown, encoding: unknown): void {
    if (this.decision !== "capture" || this.overflowed || chunk === undefined || chunk === null) {
      return;
    }
    let buffer: Buffer;
    if (typeof chunk === "string") {
      buffer = Buffer.from(
        chunk,
        typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8",
      );
    } else if (chunk instanceof Uint8Array) {
      buffer = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      // The handler may reuse its buffer after write() returns: keep a copy.
      buffer = Buffer.from(buffer);
    } else {
      return;
    }
    this.size += buffer.length;
    if (this.size > this.maxBytes) {
      this.stop();
      return;
    }
    this.chunks.push(buffer);
  }

  /** Drops a write of the replaced response, calling its callback. */
  private swallow(rest: unknown[]): true {
    const callback = rest.find((arg) => typeof arg === "function") as Callback | undefined;
    if (callback !== undefined) queueMicrotask(() => callback(null));
    return true;
  }
}
