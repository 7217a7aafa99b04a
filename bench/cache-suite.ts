/**
 * The response-cache benchmark: `cacheResponse()` hits (Redis on ioredis and on node-redis,
 * Redis behind the in-process tier, memory only) against apicache (memory) and bare Express,
 * each on a handler that answers ~1 KB of JSON at once (`0ms`) and one that answers it after a
 * 20 ms timer (`20ms`).
 * See bench/README.md.
 *
 * Every run warms the cache with one request, checks that the next request is a hit (and did
 * not run the handler), and after the run checks that the handler ran only a handful of times:
 * what is measured is hits.
 */
import type { Redis } from "ioredis";
import { BODY_TEXT } from "./body.js";
import { comparisonPairs, rawTable, summaryTable, targetLines } from "./cache-report.js";
import type { CacheServerSample } from "./cache-server.js";
import {
  CACHE_DESCRIPTIONS,
  type CacheHandler,
  type CacheVariant,
  ERK_CACHE_VARIANTS,
  entryName,
  HANDLER_PATHS,
  MAX_HANDLER_RUNS,
  parseEntry,
} from "./cache-variants.js";
import { config, HTTP_TIMEOUT_MS } from "./config.js";
import { autocannon, httpRun, measureLoad, readCpu } from "./measure.js";
import { startServer, stopChild } from "./processes.js";
import { machineLine, reportTexts } from "./report.js";
import {
  type Comparison,
  commandMix,
  compare,
  comparisonLines,
  httpProgress,
  outsideLoadLine,
  percent,
  type RunResult,
  summarize,
} from "./stats.js";
import type { SuiteDefinition } from "./suite.js";

/** Attempts (50 ms apart) to see the first hit after the warming request. */
const HIT_ATTEMPTS = 20;

/** The entries, variant-major: `bare/0ms`, `bare/20ms`, `apicache/0ms`, ... */
const ENTRIES = config.cacheVariants.flatMap((v) =>
  config.cacheHandlers.map((h) => entryName(v, h)),
);

function baselineOf(entry: string): string {
  return entryName("bare", parseEntry(entry).handler);
}

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
  return process.env.NODE_ENV === "production" || headers.get("apicache-store") === "memory";
}

/**
 * Fills the cache with one request, then waits until a request is a hit: its header says so
 * and the handler did not run. Throws when no hit comes.
 */
async function warm(port: number, variant: CacheVariant, handler: CacheHandler): Promise<void> {
  const path = HANDLER_PATHS[handler];
  const first = await get(port, path);
  if (first.status !== 200 || first.body !== BODY_TEXT)
    throw new Error(`warming GET ${path} answered ${first.status}, ${first.body.length} bytes`);
  let last = "";
  for (let attempt = 0; attempt < HIT_ATTEMPTS; attempt++) {
    const before = (await readCpu<CacheServerSample>(port)).handlerRuns[handler];
    const answer = await get(port, path);
    const after = (await readCpu<CacheServerSample>(port)).handlerRuns[handler];
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

async function runOnce(
  admin: Redis,
  redisUrl: string,
  entry: string,
  round: number,
  order: number,
): Promise<RunResult> {
  const { variant, handler } = parseEntry(entry);
  const path = HANDLER_PATHS[handler];
  await admin.flushall();
  const server = await startServer(entry, "cache-server.ts", [variant, redisUrl]);
  try {
    if (variant !== "bare") await warm(server.port, variant, handler);
    if (config.warmupS > 0) await autocannon(server.port, config.warmupS, path);
    const window = await measureLoad<CacheServerSample>(admin, server.port, {
      path,
      watchCore: true,
    });
    const { before, after } = window;
    return httpRun(
      { round, variant: entry, order },
      window,
      () => ({
        handlerRuns: after.handlerRuns[handler],
        handlerRunsMeasured: after.handlerRuns[handler] - before.handlerRuns[handler],
        ...(after.cache === undefined ? {} : { cacheErrors: after.cache.errors }),
      }),
      server.log(),
    );
  } finally {
    await stopChild(server.child);
  }
}

/** Whether a run of `entry` ran the handler more than a handful of times (bare always does). */
function tooManyRuns(run: RunResult): boolean {
  return parseEntry(run.variant).variant !== "bare" && (run.handlerRuns ?? 0) > MAX_HANDLER_RUNS;
}

export const cacheSuite: SuiteDefinition = {
  id: "cache",
  entries: ENTRIES,
  plan: `${config.durationS} s each (+${config.warmupS} s warm-up), ${config.connections} connections`,
  runOnce,
  progress(run) {
    const parts = [`handler runs ${run.handlerRuns ?? "n/a"}`];
    if (run.otherLoadOnServerCore !== undefined)
      parts.push(`other load on CPU 0 ${percent(run.otherLoadOnServerCore)}`);
    if (run.roundTripsPerReq !== undefined && run.roundTripsPerReq > 0)
      parts.push(`${run.roundTripsPerReq.toFixed(2)} round trips/req`);
    if (tooManyRuns(run)) parts.push(`!! more than ${MAX_HANDLER_RUNS} handler runs: not all hits`);
    if ((run.cacheErrors ?? 0) > 0) parts.push(`!! cache errors ${run.cacheErrors}`);
    if (run.serverLog !== undefined) parts.push(`!! server log: ${run.serverLog.split("\n")[0]}`);
    return httpProgress(run, parts.join("  "));
  },
  report(runs, failures, env, startedAt) {
    const summaries = summarize(runs, ENTRIES, baselineOf);
    const comparisons: Comparison[] = compare(runs, comparisonPairs());
    const table = summaryTable(summaries, runs);
    const targets = targetLines(summaries, runs);
    const bad = summaries.filter((s) => s.non2xx + s.errors + s.timeouts > 0);
    const missed = runs.filter(tooManyRuns);
    const cacheErrors = runs.filter((r) => (r.cacheErrors ?? 0) > 0);
    const problems = [
      ...bad.map(
        (s) =>
          `- ${s.variant}: non-2xx ${s.non2xx}, socket errors ${s.errors}, timeouts ${s.timeouts} (must be 0)`,
      ),
      ...missed.map(
        (r) =>
          `- ${r.variant} round ${r.round}: the handler ran ${r.handlerRuns} times (at most ${MAX_HANDLER_RUNS}): not measuring hits`,
      ),
      ...cacheErrors.map(
        (r) =>
          `- ${r.variant} round ${r.round}: ${r.cacheErrors} Redis failures counted by cacheResponse stats()` +
          (r.serverLog === undefined ? "" : `; server log: ${r.serverLog.replace(/\n/g, " / ")}`),
      ),
      ...failures.map(
        (f) => `- ${f.variant} failed in round ${f.round}: ${f.error.split("\n")[0]}`,
      ),
    ];
    const texts = reportTexts({
      heading: "Response cache",
      title: `Response-cache benchmark ${startedAt.toISOString()}`,
      intro: [
        `${config.rounds} round(s), ${config.durationS} s per run after one warming request and a ${config.warmupS} s warm-up, ` +
          `${config.connections} connections, one URL and one Host (every request is a hit after warming). ` +
          machineLine(env),
        "Medians over rounds; ×bare is the median of per-round ratios to `bare` on the same handler. " +
          "Redis cmds/req counts what INFO commandstats counts (a script call and the commands it runs); " +
          "round trips/req counts the commands the server's client sent; handler runs (max) includes the warming request.",
      ],
      table,
      targets,
      comparisons: comparisonLines(comparisons),
      problems,
      noProblems: `None: non-2xx responses 0, and every caching run ran its handler at most ${MAX_HANDLER_RUNS} times.`,
      noise: outsideLoadLine(runs),
      mixes: [
        {
          heading: "Redis calls per request by command (median, INFO commandstats)",
          text: commandMix(runs, ENTRIES),
        },
      ],
      variants: [
        config.cacheVariants.map((v) => `- ${v}: ${CACHE_DESCRIPTIONS[v]}`).join("\n"),
        "Handlers: `0ms` answers the ~1 KB JSON body at once; `20ms` awaits a 20 ms timer first.",
      ],
      raw: rawTable(runs),
    });
    return {
      ...texts,
      json: { summaries, comparisons, targets },
      failed: failures.length > 0 || bad.length > 0 || missed.length > 0 || cacheErrors.length > 0,
    };
  },
};
