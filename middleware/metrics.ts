/**
 * `metrics()`: every feature's counters in Prometheus text, through prom-client (an optional
 * peer dependency, loaded on the first scrape). Each feature's `stats()` works without it.
 *
 * Values are read at scrape time from every live instance in this process (rate limiters,
 * caches, lock managers, session stores, pub/subs, SSE streams) and summed per `prefix` label;
 * Redis script latency is measured where scripts run; connection state per Redis client.
 */
import type { RequestHandler } from "express";
import type { Cluster, Redis } from "ioredis";
import { isCluster } from "../stores/core/client.js";
import { fail, nonNegativeInt, rejectUnknown } from "../stores/core/options.js";
import {
  type FeatureKind,
  LATENCY_BUCKETS,
  scriptLatency,
  statsOf,
  tracked,
} from "../stores/core/registry.js";
import type { RedisClient } from "../stores/core/scripts.js";
import type { SseStats } from "./sse.js";
import { sseStats } from "./sse.js";

/** The part of a prom-client `Registry` `metrics()` uses. */
export interface MetricsRegistry {
  registerMetric(metric: unknown): void;
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** Options of `metrics()`. */
export interface MetricsOptions {
  /** Register into this prom-client registry (e.g. `client.register`). @default a new one */
  registry?: MetricsRegistry;
  /** Metric name prefix. @default "erk_" */
  prefix?: string;
  /**
   * How often the active-session count (a SCAN of the session keys, off the request path of
   * your API but on the scrape) may be refreshed, ms; 0 never counts.
   * @default 60000
   */
  sessionCountIntervalMs?: number;
}

/** The `/metrics` handler, with the registry it fills. */
export interface MetricsMiddleware extends RequestHandler {
  /** The Prometheus text of one scrape. */
  text(): Promise<string>;
}

/** The registration made in each given registry (metric names can be registered once). */
const registrations = new WeakMap<MetricsRegistry, Promise<MetricsRegistry>>();

type Labels = Record<string, string>;
type Sample = { labels: Labels; value: number; metricName?: string };
type Stats = Record<string, unknown>;

/** Sums `read(stats)` per prefix over every instance of `kind`, live or gone. */
function perPrefix(kind: FeatureKind, read: (stats: Stats) => [Labels, number][]): Sample[] {
  const sums = new Map<string, Sample>();
  for (const { label, stats } of statsOf(kind)) {
    for (const [labels, value] of read(stats)) {
      const all = { prefix: label, ...labels };
      const key = JSON.stringify(all);
      const sample = sums.get(key) ?? { labels: all, value: 0 };
      sample.value += value;
      sums.set(key, sample);
    }
  }
  return [...sums.values()];
}

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** Where a client connects, for the `client` label (no credentials). */
function address(redis: RedisClient): string {
  if (isCluster(redis)) {
    const names = (redis as Cluster)
      .nodes("master")
      .map((n) => `${n.options.host}:${n.options.port}`);
    return `cluster ${names.sort()[0] ?? "(not connected)"}`;
  }
  const { host, port, path } = (redis as Redis).options;
  return path ? `unix ${path}` : `${host}:${port}`;
}

/** The metrics handler; see the module comment. */
export function metrics(options: MetricsOptions = {}): MetricsMiddleware {
  const scope = "metrics";
  rejectUnknown(scope, options, ["registry", "prefix", "sessionCountIntervalMs"]);
  const prefix = options.prefix ?? "erk_";
  if (typeof prefix !== "string" || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    fail(scope, "prefix", "a Prometheus metric name prefix", prefix);
  }
  const interval = nonNegativeInt(
    scope,
    "sessionCountIntervalMs",
    options.sessionCountIntervalMs,
    60_000,
  );
  const given = options.registry;
  if (given !== undefined && typeof given?.registerMetric !== "function") {
    fail(scope, "registry", "a prom-client Registry", given);
  }
  let counted = { at: 0, value: new Map<string, number>() };

  let counting: Promise<void> | undefined;
  const activeSessions = async (): Promise<Sample[]> => {
    if (interval > 0 && Date.now() - counted.at >= interval) {
      counting ??= countSessions().finally(() => {
        counting = undefined;
      });
      await counting;
    }
    return [...counted.value].map(([label, value]) => ({ labels: { prefix: label }, value }));
  };
  /** One SCAN-based count at a time, however many scrapes overlap. */
  const countSessions = async (): Promise<void> => {
    const value = new Map<string, number>();
    for (const { kind, label, instance } of tracked()) {
      if (kind !== "sessions") continue;
      try {
        const length = await (instance as unknown as { length(): Promise<unknown> }).length();
        value.set(label, (value.get(label) ?? 0) + num(length));
      } catch {
        // Redis unavailable: keep the last count rather than failing the scrape.
        value.set(label, counted.value.get(label) ?? 0);
      }
    }
    counted = { at: Date.now(), value };
  };

  const definitions: [string, string, string, () => Sample[] | Promise<Sample[]>][] = [
    [
      "rate_limit_requests_total",
      "Rate-limited requests by result.",
      "counter",
      () =>
        perPrefix("rateLimiter", (s) => [
          [{ result: "allowed" }, num(s.allowed)],
          [{ result: "blocked" }, num(s.blocked)],
        ]),
    ],
    [
      "rate_limit_fallbacks_total",
      "Rate-limit calls answered by the failure mode instead of Redis.",
      "counter",
      () => perPrefix("rateLimiter", (s) => [[{}, num(s.fallbacks)]]),
    ],
    [
      "cache_requests_total",
      "Cached-route requests by result.",
      "counter",
      () =>
        perPrefix("cache", (s) =>
          ["hit", "miss", "stale", "bypass"].map((r) => [
            { result: r },
            num(
              s[
                r === "bypass"
                  ? "bypasses"
                  : r === "hit"
                    ? "hits"
                    : r === "miss"
                      ? "misses"
                      : "stale"
              ],
            ),
          ]),
        ),
    ],
    [
      "cache_hit_ratio",
      "Hits (fresh or stale) over hits and misses, since start.",
      "gauge",
      () => {
        // From the sums per prefix (a ratio summed over instances would mean nothing).
        const served = perPrefix("cache", (s) => [[{}, num(s.hits) + num(s.stale)]]);
        const misses = perPrefix("cache", (s) => [[{}, num(s.misses)]]);
        return served.map((sample, i) => {
          const total = sample.value + (misses[i]?.value ?? 0);
          return { labels: sample.labels, value: total === 0 ? 0 : sample.value / total };
        });
      },
    ],
    [
      "lock_acquisitions_total",
      "Locks acquired.",
      "counter",
      () => perPrefix("lock", (s) => [[{}, num(s.acquired)]]),
    ],
    [
      "lock_contended_total",
      "Acquisitions that found the lock held.",
      "counter",
      () => perPrefix("lock", (s) => [[{}, num(s.contended)]]),
    ],
    [
      "lock_lost_total",
      "Locks lost while held.",
      "counter",
      () => perPrefix("lock", (s) => [[{}, num(s.lost)]]),
    ],
    [
      "lock_wait_seconds_total",
      "Time spent waiting for locks.",
      "counter",
      () => perPrefix("lock", (s) => [[{}, num(s.waitMs) / 1000]]),
    ],
    [
      "sessions_created_total",
      "Sessions that gained an owner (logins).",
      "counter",
      () => perPrefix("sessions", (s) => [[{}, num(s.created)]]),
    ],
    [
      "sessions_revoked_total",
      "Sessions revoked.",
      "counter",
      () => perPrefix("sessions", (s) => [[{}, num(s.revoked)]]),
    ],
    [
      "sessions_active",
      "Live sessions (counted at most once per sessionCountIntervalMs).",
      "gauge",
      activeSessions,
    ],
    [
      "pubsub_messages_total",
      "Pub/sub messages by direction.",
      "counter",
      () =>
        perPrefix("pubsub", (s) => [
          [{ direction: "published" }, num(s.published)],
          [{ direction: "received" }, num(s.received)],
          [{ direction: "dropped" }, num(s.dropped)],
        ]),
    ],
    [
      "sse_clients",
      "Open Server-Sent Events streams.",
      "gauge",
      () => [{ labels: {}, value: sseStats().open }],
    ],
    [
      "sse_dropped_total",
      "SSE clients dropped for not reading.",
      "counter",
      () => [{ labels: {}, value: (sseStats() as SseStats).dropped }],
    ],
    [
      "redis_connected",
      "1 when the Redis client is ready.",
      "gauge",
      () => {
        // One series per address: 1 only when every client to it is ready.
        const up = new Map<string, number>();
        for (const { redis } of tracked()) {
          if (redis === undefined) continue;
          const client = address(redis);
          up.set(client, Math.min(up.get(client) ?? 1, redis.status === "ready" ? 1 : 0));
        }
        return [...up].map(([client, value]) => ({ labels: { client }, value }));
      },
    ],
    [
      "redis_script_duration_seconds",
      "Lua script calls, from send to reply.",
      "histogram",
      () => {
        const samples: Sample[] = [];
        const name = `${prefix}redis_script_duration_seconds`;
        for (const [script, h] of scriptLatency()) {
          let cumulative = 0;
          LATENCY_BUCKETS.forEach((bound, i) => {
            cumulative += h.buckets[i]!;
            samples.push({
              labels: { script, le: String(bound) },
              value: cumulative,
              metricName: `${name}_bucket`,
            });
          });
          samples.push({
            labels: { script, le: "+Inf" },
            value: h.count,
            metricName: `${name}_bucket`,
          });
          samples.push({ labels: { script }, value: h.sum, metricName: `${name}_sum` });
          samples.push({ labels: { script }, value: h.count, metricName: `${name}_count` });
        }
        return samples;
      },
    ],
  ];

  let ready: Promise<MetricsRegistry> | undefined;
  const load = () => {
    // Registered once per registry: a second metrics() on the same one shares the first's.
    const shared = given === undefined ? undefined : registrations.get(given);
    if (shared !== undefined) return shared;
    ready ??= import("prom-client").then(
      (client) => {
        const registry = given ?? (new client.Registry() as unknown as MetricsRegistry);
        for (const [short, help, type, read] of definitions) {
          const name = `${prefix}${short}`;
          registry.registerMetric({
            name,
            help,
            type,
            get: async () => ({ name, help, type, aggregator: "sum", values: await read() }),
            reset() {},
          });
        }
        return registry;
      },
      () => {
        if (given !== undefined) registrations.delete(given);
        ready = undefined; // installed later: try again
        throw new Error("metrics() needs prom-client: npm install prom-client");
      },
    );
    if (given !== undefined) registrations.set(given, ready);
    return ready;
  };

  const text = async () => (await load()).metrics();
  const handler: RequestHandler = function metricsMiddleware(_req, res, next) {
    load()
      .then(async (registry) => {
        const body = await registry.metrics();
        res.setHeader("Content-Type", registry.contentType);
        res.end(body);
      })
      .catch(next);
  };
  return Object.assign(handler, { text });
}
