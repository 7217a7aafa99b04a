/**
 * The one registry of Lua scripts for every feature.
 *
 * A script is declared once at module level with `defineScript()` and run with
 * `script.run(driver, keys, args)`. The driver sends EVALSHA and falls back to EVAL only when
 * Redis answers NOSCRIPT (after a restart or `SCRIPT FLUSH`), per connection and per Cluster
 * node. A script is never retried on any other error, so a failure can never count twice.
 * The drivers record every call's latency (`observeScript`) for the metrics.
 */
import { type Arg, type RedisDriver, type ScriptSource, scriptSource } from "./driver.js";

export type { RedisClient } from "./drivers.js";

/** A Lua script registered under one command name on every client that runs it. */
export interface Script extends ScriptSource {
  /** Runs the script with `keys` as KEYS (all sharing one hash tag) and `args` as ARGV. */
  run(driver: RedisDriver, keys: readonly string[], args: readonly Arg[]): Promise<unknown>;
  /** Like `run`, with bulk replies as Buffers (for binary values). */
  runBuffer(driver: RedisDriver, keys: readonly string[], args: readonly Arg[]): Promise<unknown>;
}

const names = new Set<string>();

/** Declares a script. `name` must be unique across the package. */
export function defineScript(name: string, lua: string): Script {
  if (names.has(name)) throw new Error(`script ${name} is defined twice`);
  names.add(name);
  const source = scriptSource(`erk_${name}`, lua);
  return {
    ...source,
    run: (driver, keys, args) => driver.script(source, keys, args, false),
    runBuffer: (driver, keys, args) => driver.script(source, keys, args, true),
  };
}
