/**
 * The registry behind `featureStates()` (and so `redisHealth()`): every live `BackendSwitch`,
 * held weakly, with its feature's name.
 */
import type { OnRedisError } from "./failure.js";

/** What the registry reads of a switch. */
interface Reporting {
  readonly scope: string;
  readonly state: "redis" | "memory" | "degraded";
  readonly onRedisError: OnRedisError;
  readonly lastErrorMessage: string | undefined;
}

/** One feature's state, as `redisHealth()` reports it. */
export interface FeatureState {
  /** The factory, e.g. `rateLimit`. */
  scope: string;
  /** `"redis"`, `"memory"` (no Redis configured) or `"degraded"` (serving from its fallback). */
  state: "redis" | "memory" | "degraded";
  onRedisError: OnRedisError;
  /** Why Redis is failing, while degraded. */
  error?: string;
}

type Entry = { scope: string; ref: WeakRef<Reporting> };
const switches = new Set<Entry>();
const switchFinalizer = new FinalizationRegistry<Entry>((entry) => switches.delete(entry));

/** Lists `sw` in `featureStates()` until it is closed or collected. */
export function registerSwitch(sw: Reporting): void {
  const entry = { scope: sw.scope, ref: new WeakRef(sw) };
  switches.add(entry);
  switchFinalizer.register(sw, entry, sw);
}

/** Forgets `sw` (its feature's `close()`). */
export function unregisterSwitch(sw: Reporting): void {
  for (const entry of switches) if (entry.ref.deref() === sw) switches.delete(entry);
  switchFinalizer.unregister(sw);
}

/** The state of every live feature instance in this process (weakly held). */
export function featureStates(): FeatureState[] {
  const out: FeatureState[] = [];
  for (const { scope, ref } of switches) {
    const sw = ref.deref();
    if (sw === undefined) continue;
    const error = sw.lastErrorMessage;
    out.push({
      scope,
      state: sw.state,
      onRedisError: sw.onRedisError,
      ...(error === undefined ? {} : { error }),
    });
  }
  return out;
}
