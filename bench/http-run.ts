/**
 * One measured run of one HTTP entry, the same steps for every HTTP suite (as
 * ../shared/peer-bench's runner takes them):
 *
 * 1. `FLUSHALL`, then a fresh `http-server.ts` for the variant, pinned to CPU 0;
 * 2. GET /__prime: the headers the load sends (a session cookie);
 * 3. the suite's own checks and probes (`prepare`: a verified cache hit, a session that reads
 *    and writes);
 * 4. a warm-up load (`BENCH_WARMUP` s, not recorded), then the measured load
 *    (`BENCH_DURATION` s) from CPU 1, sampling the server's CPU time and requests received,
 *    INFO commandstats and CPU 0 around it;
 * 5. the server stopped.
 */
import type { Redis } from "ioredis";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { type LoadRequest, runLoad } from "./loadgen.js";
import { httpRun, measureLoad } from "./measure.js";
import { type ServerHandle, startServer, stopChild } from "./processes.js";
import type { ServerSample } from "./scenario.js";
import type { RunResult } from "./stats.js";
import type { MeasuredRun } from "./suite.js";

/** What one entry's run loads, and what the suite does before and after. */
export interface HttpPlan<T extends ServerSample, P, X extends object> {
  /** The server's suite name (`http-server.ts`'s first argument) and variant. */
  suite: string;
  variant: string;
  /** The path loaded, and the method (default GET). */
  path: string;
  method?: "GET" | "POST";
  /** Headers every request sends when prime gives none (bare's stand-in cookie). */
  defaultHeaders?: Record<string, string>;
  /** Checks and probes before the warm-up; throws when the entry cannot be measured. */
  prepare?(server: ServerHandle, headers: Record<string, string>): Promise<P>;
  /** The suite's own figures for the record, from the window's samples and `prepare`'s result. */
  extra?(before: T, after: T, perReq: (n: number) => number, prepared: P | undefined): X;
}

/** GET /__prime: the `Name: value` headers the scenario wants on every request. */
async function prime(port: number): Promise<Record<string, string>> {
  const response = await fetch(`http://127.0.0.1:${port}/__prime`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`GET /__prime answered ${response.status}`);
  const { headers } = (await response.json()) as { headers: string[] };
  return Object.fromEntries(
    headers.map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
    }),
  );
}

/** Runs `plan` once (see the module comment) and returns its record. */
export async function runHttpEntry<
  T extends ServerSample,
  P = undefined,
  X extends object = object,
>(
  admin: Redis,
  redisUrl: string,
  id: MeasuredRun,
  plan: HttpPlan<T, P, X>,
): Promise<RunResult & X> {
  await admin.flushall();
  const server = await startServer(id.variant, [plan.suite, plan.variant, redisUrl]);
  try {
    const primed = await prime(server.port);
    const headers = Object.keys(primed).length > 0 ? primed : (plan.defaultHeaders ?? {});
    const prepared = await plan.prepare?.(server, headers);
    const request: LoadRequest = { ...(plan.method ? { method: plan.method } : {}), headers };
    if (config.warmupS > 0) await runLoad(server.port, config.warmupS, plan.path, request);
    const window = await measureLoad<T>(admin, server.port, plan.path, request);
    return httpRun(id, window, server.log(), (perReq) =>
      plan.extra === undefined
        ? ({} as X)
        : plan.extra(window.before, window.after, perReq, prepared),
    );
  } finally {
    await stopChild(server.child);
  }
}
