/**
 * Helpers of the cacheResponse() tests: an app served on one port (the cache key includes
 * `Host`, so every request of a test must reach the same host:port), and backends.
 */
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import request from "supertest";
import {
  type CacheResponseMiddleware,
  type CacheResponseOptions,
  cacheResponse,
} from "../index.js";
import { type Backend, quiet } from "./helpers.js";

/** Where a test's cache lives. */
export type CacheBackend = Backend;

export { clientFor, quiet } from "./helpers.js";

/** A running app: `get(path)` etc. go to one listening server; `calls` counts handler runs. */
export interface CacheApp {
  app: express.Express;
  cache: CacheResponseMiddleware;
  calls: Map<string, number>;
  agent: () => request.Agent;
  get: (path: string) => request.Test;
  /** The port the app listens on (127.0.0.1). */
  port: number;
  close: () => Promise<void>;
}

const servers: Server[] = [];
const caches: CacheResponseMiddleware[] = [];

/**
 * Serves `routes` (path → handler) behind `cacheResponse(options)`, with an error handler
 * answering 500. Every handler run is counted in `calls` under its path.
 */
export async function serve(
  options: CacheResponseOptions,
  routes: Record<string, express.RequestHandler>,
  before: express.RequestHandler[] = [],
): Promise<CacheApp> {
  const cache = cacheResponse({ logger: quiet, ...options });
  caches.push(cache);
  const app = express();
  const calls = new Map<string, number>();
  for (const handler of before) app.use(handler);
  app.use(cache);
  for (const [path, handler] of Object.entries(routes)) {
    app.all(path, (req, res, next) => {
      calls.set(path, (calls.get(path) ?? 0) + 1);
      return handler(req, res, next);
    });
  }
  app.use(
    (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: err.message });
    },
  );
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A response arrives as its entry is being stored: resolve each request only once the
  // cache is idle, so the next request of a test sees what the previous one stored.
  const settled = (test: request.Test): request.Test => {
    const then = test.then.bind(test);
    // biome-ignore lint/suspicious/noThenProperty: a supertest Test is a thenable; this one settles the cache first
    test.then = ((ok, ko) =>
      then(async (res) => {
        await cache.idle();
        return res;
      }).then(ok, ko)) as request.Test["then"];
    return test;
  };
  const agent = () => {
    const a = request.agent(url());
    for (const method of ["get", "head", "post", "put", "delete"] as const) {
      const original = a[method].bind(a);
      a[method] = ((path: string) => settled(original(path))) as (typeof a)[typeof method];
    }
    return a;
  };
  return {
    app,
    cache,
    calls,
    agent,
    get: (path) => settled(request(url()).get(path)),
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await cache.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Closes every server and cache `serve()` started. */
export async function closeServers(): Promise<void> {
  for (const cache of caches.splice(0)) await cache.close();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A supertest parser that keeps the body as raw bytes. */
export function binary(
  res: request.Response,
  callback: (err: Error | null, body: Buffer) => void,
): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("end", () => callback(null, Buffer.concat(chunks)));
}
