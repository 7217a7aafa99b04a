/**
 * The response-cache benchmark: `cacheResponse()` hits (Redis on ioredis and on node-redis,
 * the in-process tier in front of Redis, memory only) against apicache's memory and Redis hits
 * and bare Express, each on a handler that answers the 1024-byte JSON at once (`0ms`, GET /api,
 * as ../shared/peer-bench) and one that answers it after a 20 ms timer (`20ms`, GET /slow).
 * See bench/README.md.
 *
 * Every run warms the cache with one request, checks that the next request is a hit (and did
 * not run the handler), and after the run checks that the handler ran only a handful of times:
 * what is measured is hits.
 */
import type { Redis } from "ioredis";
import { BODY_TEXT } from "./body.js";
import { CACHE_ENTRIES, cacheReport, tooManyRuns } from "./cache-report.js";
import {
  type CacheHandler,
  type CacheVariant,
  ERK_CACHE_VARIANTS,
  HANDLER_KEYS,
  HANDLER_PATHS,
  MAX_HANDLER_RUNS,
  parseEntry,
} from "./cache-variants.js";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { runHttpEntry } from "./http-run.js";
import { readCpu } from "./measure.js";
import type { ServerSample } from "./scenario.js";
import { httpNoise, httpProgress, type RunResult } from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

/** Attempts (50 ms apart) to see the first hit after the warming request. */
const HIT_ATTEMPTS = 20;

/** What the server's GET /__cpu answers for a cache variant. */
type CacheSample = ServerSample & { cache?: { errors: number } };

interface Answer {
  status: number;
  body: string;
  headers: Headers;
}

async function get(port: number, path: string): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** What marks a hit in the variant's response headers (apicache: only outside production). */
function hitMark(variant: CacheVariant, headers: Headers): string {
  if (ERK_CACHE_VARIANTS.has(variant)) return `X-Cache: ${headers.get("x-cache") ?? "(none)"}`;
  return `apicache-store: ${headers.get("apicache-store") ?? "(none)"}`;
}

function markSaysHit(variant: CacheVariant, headers: Headers): boolean {
  if (ERK_CACHE_VARIANTS.has(variant)) return headers.get("x-cache") === "HIT";
  // apicache sets its headers on hits only, and not when NODE_ENV is "production".
  const store = variant === "apicache-redis" ? "redis" : "memory";
  return process.env.NODE_ENV === "production" || headers.get("apicache-store") === store;
}

/**
 * Fills the cache with one request, then waits until a request is a hit: its header says so
 * and the handler did not run. Throws when no hit comes.
 */
async function warm(port: number, variant: CacheVariant, handler: CacheHandler): Promise<void> {
  const path = HANDLER_PATHS[handler];
  const calls = async () => (await readCpu(port)).handlerCalls[HANDLER_KEYS[handler]];
  const first = await get(port, path);
  if (first.status !== 200 || first.body !== BODY_TEXT)
    throw new Error(`warming GET ${path} answered ${first.status}, ${first.body.length} bytes`);
  let last = "";
  for (let attempt = 0; attempt < HIT_ATTEMPTS; attempt++) {
    const before = await calls();
    const answer = await get(port, path);
    const after = await calls();
    const hit =
      answer.status === 200 &&
      answer.body === BODY_TEXT &&
      after === before &&
      markSaysHit(variant, answer.headers);
    if (hit) return;
    last = `${answer.status}, ${hitMark(variant, answer.headers)}, body ${answer.body === BODY_TEXT ? "as expected" : "DIFFERENT"}, handler runs ${before} → ${after}`;
    await new Promise((resolve) => setTimeout(resolve, 50)); // the fill is stored after the response
  }
  throw new Error(`no cache hit on GET ${path} after warming (last answer: ${last})`);
}

function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<RunResult> {
  const { variant, handler } = parseEntry(entry);
  const key = HANDLER_KEYS[handler];
  return runHttpEntry<CacheSample, undefined, Partial<RunResult>>(
    admin,
    redisUrl,
    { round, variant: entry, order },
    {
      suite: "cache",
      variant,
      path: HANDLER_PATHS[handler],
      prepare: async (server) => {
        if (variant !== "bare") await warm(server.port, variant, handler);
        return undefined;
      },
      extra: (before, after) => ({
        handlerRuns: after.handlerCalls[key],
        handlerRunsMeasured: after.handlerCalls[key] - before.handlerCalls[key],
        ...(after.cache === undefined ? {} : { cacheErrors: after.cache.errors }),
      }),
    },
  );
}

export const cacheSuite: SuiteDefinition = {
  id: "cache",
  entries: CACHE_ENTRIES,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections`,
  runOnce,
  noise: httpNoise,
  progress(run) {
    const parts = [`handler runs ${run.handlerRuns ?? "n/a"}`];
    if (run.roundTripsPerReq > 0) parts.push(`${run.roundTripsPerReq.toFixed(2)} round trips/req`);
    if (tooManyRuns(run)) parts.push(`!! more than ${MAX_HANDLER_RUNS} handler runs: not all hits`);
    if ((run.cacheErrors ?? 0) > 0) parts.push(`!! cache errors ${run.cacheErrors}`);
    if (run.serverLog !== undefined) parts.push(`!! server log: ${run.serverLog.split("\n")[0]}`);
    return httpProgress(run, parts.join("  "));
  },
  report: cacheReport,
};
