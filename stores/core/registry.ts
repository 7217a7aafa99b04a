/**
 * What `metrics()` reads: every live feature instance (weakly held, so tracking never keeps one
 * alive) and the latency of every Lua script call, measured where scripts are run.
 */
import type { RedisClient } from "./scripts.js";

/** The feature kinds `metrics()` reports. */
export type FeatureKind = "rateLimiter" | "cache" | "lock" | "sessions" | "pubsub";

/** Anything with counters. */
export interface HasStats {
  stats(): object;
}

interface Entry {
  kind: FeatureKind;
  /** The instance's key prefix (or channel prefix): the `prefix` label. */
  label: string;
  ref: WeakRef<HasStats>;
  redis: WeakRef<RedisClient> | undefined;
}

const entries = new Set<Entry>();
const finalizer = new FinalizationRegistry<Entry>((entry) => entries.delete(entry));

/** Records a feature instance for `metrics()`; it is forgotten when collected or `untrack`ed. */
export function track(kind: FeatureKind, label: string, instance: HasStats, redis?: RedisClient) {
  const entry: Entry = {
    kind,
    label,
    ref: new WeakRef(instance),
    redis: redis === undefined ? undefined : new WeakRef(redis),
  };
  entries.add(entry);
  finalizer.register(instance, entry, instance);
}

/** Forgets an instance (its `close()`). */
export function untrack(instance: HasStats): void {
  for (const entry of entries) if (entry.ref.deref() === instance) entries.delete(entry);
  finalizer.unregister(instance);
}

/** The live instances, with their Redis client when they have one. */
export function tracked(): {
  kind: FeatureKind;
  label: string;
  instance: HasStats;
  redis?: RedisClient;
}[] {
  const out = [];
  for (const entry of entries) {
    const instance = entry.ref.deref();
    if (instance === undefined) {
      entries.delete(entry);
      continue;
    }
    out.push({ kind: entry.kind, label: entry.label, instance, redis: entry.redis?.deref() });
  }
  return out;
}

/** Upper bounds (seconds) of the script latency histogram's buckets. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Per script: bucket counts (cumulative at read time), sum of seconds, calls, failures. */
export interface ScriptLatency {
  buckets: number[];
  sum: number;
  count: number;
  errors: number;
}

const latency = new Map<string, ScriptLatency>();

/** Records one script call of `seconds` (called by the script registry). */
export function observeScript(command: string, seconds: number, failed: boolean): void {
  let entry = latency.get(command);
  if (entry === undefined) {
    entry = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0, errors: 0 };
    latency.set(command, entry);
  }
  const i = LATENCY_BUCKETS.findIndex((bound) => seconds <= bound);
  if (i !== -1) entry.buckets[i]!++;
  entry.sum += seconds;
  entry.count++;
  if (failed) entry.errors++;
}

/** A copy of the script latencies so far (per-bucket counts, not cumulative). */
export function scriptLatency(): Map<string, ScriptLatency> {
  return new Map([...latency].map(([k, v]) => [k, { ...v, buckets: [...v.buckets] }]));
}
