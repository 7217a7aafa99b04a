/**
 * What every benchmark server process does once its app is built: listen on 127.0.0.1, print
 * READY for the driver, and shut down (closing `redis`) on SIGTERM, SIGINT or when the
 * driver's stdin closes, so no server outlives a run.
 */
import type { Server } from "node:http";
import type { Express } from "express";
import type { Redis } from "ioredis";

/** Serves `app` on `port` until told to stop; see the module comment. */
export async function serveUntilStopped(app: Express, port: number, redis?: Redis): Promise<void> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  let closing = false;
  const shutdown = (code: number) => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(code), 1000).unref();
    server.closeAllConnections();
    server.close(() => {
      redis?.disconnect();
      process.exit(code);
    });
  };
  process.once("SIGTERM", () => shutdown(0));
  process.once("SIGINT", () => shutdown(0));
  process.stdin.on("end", () => shutdown(0));
  process.stdin.on("error", () => shutdown(0));
  process.stdin.resume();
  process.stdout.write("READY\n");
}
