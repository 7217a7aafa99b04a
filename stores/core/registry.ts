/**
 * What `metrics()` reads: every live feature instance (weakly held, so tracking never keeps one
 * alive) and the latency of every Lua script call, measured where scripts are run.
 */
import type { RedisDriver } from "./driver.js";

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
  redis: WeakRef<RedisDriver> | undefined;
  /** The counters as last read, kept for when the instance is collected without `close()`. */
  last: object | undefined;
}

const entries = new Set<Entry>();
/**
 * Counters of instances that are gone, per kind and label, so totals never go down (a
 * Prometheus counter that drops reads as a reset).
 */
const retired = new Map<
  string,
  { kind: FeatureKind; label: string; sums: Record<string, number> }
>();

function fold(kind: FeatureKind, label: string, stats: object | undefined): void {
  if (stats === undefined) return;
  const key = `${kind} ${label}`;
  let slot = retired.get(key);
  if (slot === undefined) {
    slot = { kind, label, sums: {} };
    retired.set(key, slot);
  }
  for (const [field, value] of Object.entries(stats)) {
    if (typeof value === "number" && Number.isFinite(value)) {
      slot.sums[field] = (slot.sums[field] ?? 0) + value;
    }
  }
}

const finalizer = new FinalizationRegistry<Entry>((entry) => {
  entries.delete(entry);
  fold(entry.kind, entry.label, entry.last);
});

/** Records a feature instance for `metrics()`; it is forgotten when collected or `untrack`ed. */
export function track(kind: FeatureKind, label: string, instance: HasStats, redis?: RedisDriver) {
  const entry: Entry = {
    kind,
    label,
    ref: new WeakRef(instance),
    redis: redis === undefined ? undefined : new WeakRef(redis),
    last: undefined,
  };
  entries.add(entry);
  finalizer.register(instance, entry, instance);
}

/** Forgets an instance (its `close()`), keeping its counters in the totals. */
export function untrack(instance: HasStats): void {
  for (const entry of entries) {
    if (entry.ref.deref() !== instance) continue;
    entries.delete(entry);
    fold(entry.kind, entry.label, instance.stats());
  }
  finalizer.unregister(instance);
}

/**
 * The counters of every instance of `kind`, live ones read now, and per label the totals of
 * those that are gone.
 */
export function statsOf(kind: FeatureKind): { label: string; stats: Record<string, unknown> }[] {
  const out: { label: string; stats: Record<string, unknown> }[] = [];
  for (const entry of entries) {
    if (entry.kind !== kind) continue;
    const instance = entry.ref.deref();
    if (instance === undefined) continue;
    const stats = instance.stats() as Record<string, unknown>;
    entry.last = stats;
    out.push({ label: entry.label, stats });
  }
  for (const slot of retired.values()) {
    if (slot.kind === kind) out.push({ label: slot.label, stats: slot.sums });
  }
  return out;
}

/** The live instances, with their Redis client when they have one. */
export function tracked(): {
  kind: FeatureKind;
  label: string;
  instance: HasStats;
  redis?: RedisDriver;
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

/** Records one script call sent at `started` (`performance.now()`), by the drivers. */
export function observeScript(command: string, started: number, failed: boolean): void {
  const seconds = (performance.now() - started) / 1000;
  let entry = latency.get(command);
  if (entry === undefined) {
    entry = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0, errors: 0 };
    latency.set(command, entry);
  }
  let i = 0;
  while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
  if (i < LATENCY_BUCKETS.length) entry.buckets[i]!++;
  entry.sum += seconds;
  entry.count++;
  if (failed) entry.errors++;
}

/** A copy of the script latencies so far (per-bucket counts, not cumulative). */
export function scriptLatency(): Map<string, ScriptLatency> {
  return new Map([...latency].map(([k, v]) => [k, { ...v, buckets: [...v.buckets] }]));
}
