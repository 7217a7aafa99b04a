/**
 * What `metrics()` exports: one entry per metric (name, help, type, and how to read its samples
 * at scrape time from every instance of a feature, live or gone, summed per prefix).
 */

import type { RedisDriver } from "../stores/core/driver.js";
import { learnServer } from "../stores/core/health.js";
import {
  type FeatureKind,
  LATENCY_BUCKETS,
  scriptLatency,
  statsOf,
  tracked,
} from "../stores/core/registry.js";
import { sseStats } from "./sse.js";

/** Labels of a sample. */
export type Labels = Record<string, string>;
/** One sample, as prom-client formats it. */
export type Sample = { labels: Labels; value: number; metricName?: string };
type Stats = Record<string, unknown>;

/** Sums `read(stats)` per prefix over every instance of `kind`, live or gone. */
function perPrefix(kind: FeatureKind, read: (stats: Stats) => [Labels, number][]): Sample[] {
  const sums = new Map<string, Sample>();
  for (const { label, stats } of snapshot(kind)) {
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

/**
 * During a scrape through `metrics()`, every instance's counters are read once, however many
 * metrics read the same kind (a registry scraped directly reads them per metric).
 */
let scrape: Map<FeatureKind, ReturnType<typeof statsOf>> | undefined;
let scrapes = 0;
export async function scraping<T>(work: () => Promise<T>): Promise<T> {
  if (scrapes++ === 0) scrape = new Map();
  try {
    return await work();
  } finally {
    if (--scrapes === 0) scrape = undefined;
  }
}
function snapshot(kind: FeatureKind): ReturnType<typeof statsOf> {
  if (scrape === undefined) return statsOf(kind);
  let stats = scrape.get(kind);
  if (stats === undefined) {
    stats = statsOf(kind);
    scrape.set(kind, stats);
  }
  return stats;
}

/** A finite number, else 0. */
export const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** Where a client connects, for the `client` label (no credentials). */
function address(redis: RedisDriver): string {
  return redis.topology === "standalone" ? redis.address : `${redis.topology} ${redis.address}`;
}

/** Name (without prefix), help, type, and a reader of the samples of every metric. */
export type MetricDefinition = [string, string, string, () => Sample[] | Promise<Sample[]>];

/** The metric definitions, named with `prefix`; `activeSessions` reads the session count. */
export function metricDefinitions(
  prefix: string,
  activeSessions: () => Promise<Sample[]>,
): MetricDefinition[] {
  return [
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
        const sums = perPrefix("cache", (s) => [
          [{ part: "served" }, num(s.hits) + num(s.stale)],
          [{ part: "all" }, num(s.hits) + num(s.stale) + num(s.misses)],
        ]);
        const served = new Map<string, number>();
        for (const { labels, value } of sums) {
          if (labels.part === "served") served.set(labels.prefix!, value);
        }
        return sums
          .filter(({ labels }) => labels.part === "all")
          .map(({ labels, value }) => ({
            labels: { prefix: labels.prefix! },
            value: value === 0 ? 0 : (served.get(labels.prefix!) ?? 0) / value,
          }));
      },
    ],
    [
      "cache_validations_total",
      "Stale entries revalidated with the origin, by the handler's answer (not_modified: it answered 304).",
      "counter",
      () =>
        perPrefix("cache", (s) => [
          [{ result: "not_modified" }, num(s.notModified)],
          [{ result: "other" }, num(s.validations) - num(s.notModified)],
        ]),
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
      () => [{ labels: {}, value: sseStats().dropped }],
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
          up.set(client, Math.min(up.get(client) ?? 1, redis.ready ? 1 : 0));
        }
        return [...up].map(([client, value]) => ({ labels: { client }, value }));
      },
    ],
    [
      "redis_client_info",
      "Each Redis client in use: its address, library, topology and server (redis or valkey, once known).",
      "gauge",
      () => {
        const seen = new Map<string, Sample>();
        for (const { redis } of tracked()) {
          if (redis === undefined) continue;
          learnServer(redis);
          const labels = {
            client: address(redis),
            family: redis.family,
            topology: redis.topology,
            server: redis.server ?? "unknown",
          };
          seen.set(JSON.stringify(labels), { labels, value: 1 });
        }
        return [...seen.values()];
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
}
