/**
 * `metrics()`: every feature's counters in Prometheus text, through prom-client (an optional
 * peer dependency, loaded on the first scrape). Each feature's `stats()` works without it.
 *
 * Values are read at scrape time from every live instance in this process (rate limiters,
 * caches, lock managers, session stores, pub/subs, SSE streams) and summed per `prefix` label;
 * Redis script latency is measured where scripts run; connection state per Redis client.
 */
import type { RequestHandler } from "express";
import { fail, nonNegativeInt, rejectUnknown } from "../stores/core/options.js";
import { tracked } from "../stores/core/registry.js";
import { metricDefinitions, num, type Sample, scraping } from "./metrics-definitions.js";

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

  const definitions = metricDefinitions(prefix, activeSessions);

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

  const text = async () => {
    const registry = await load();
    return scraping(() => registry.metrics());
  };
  const handler: RequestHandler = function metricsMiddleware(_req, res, next) {
    load()
      .then(async (registry) => {
        const body = await scraping(() => registry.metrics());
        res.setHeader("Content-Type", registry.contentType);
        res.end(body);
      })
      .catch(next);
  };
  return Object.assign(handler, { text });
}
