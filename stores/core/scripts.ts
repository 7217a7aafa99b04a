/**
 * The one registry of Lua scripts for every feature.
 *
 * A script is declared once at module level with `defineScript()` and run with
 * `script.run(redis, keys, args)`. The first run on a client registers it with ioredis's
 * `defineCommand`, which sends EVALSHA and falls back to EVAL only when Redis answers
 * NOSCRIPT (after a restart or `SCRIPT FLUSH`), per connection and per Cluster node. A script
 * is never retried on any other error, so a failure can never count twice.
 */
import type { Cluster, Redis } from "ioredis";
import { observeScript } from "./registry.js";

/** An ioredis standalone client or Cluster client: what every `redis` option accepts. */
export type RedisClient = Redis | Cluster;

/** A Lua script registered under one command name on every client that runs it. */
export interface Script {
  /** The ioredis command name the script is registered under (`erk_<name>`). */
  readonly command: string;
  /** The Lua source. */
  readonly lua: string;
  /** Runs the script with `keys` as KEYS (all sharing one hash tag) and `args` as ARGV. */
  run(
    redis: RedisClient,
    keys: readonly string[],
    args: readonly (string | number | Buffer)[],
  ): Promise<unknown>;
  /** Like `run`, with bulk replies as Buffers (for binary values). */
  runBuffer(
    redis: RedisClient,
    keys: readonly string[],
    args: readonly (string | number | Buffer)[],
  ): Promise<unknown>;
}

const registered = new WeakMap<RedisClient, Set<string>>();
const names = new Set<string>();

type Arg = string | number | Buffer;
type ScriptCommand = (numKeys: number, ...keysAndArgs: Arg[]) => Promise<unknown>;

/** Declares a script. `name` must be unique across the package. */
export function defineScript(name: string, lua: string): Script {
  if (names.has(name)) throw new Error(`script ${name} is defined twice`);
  names.add(name);
  const command = `erk_${name}`;
  // Method names built once: a key concatenated per call would be hashed on every lookup.
  const methods = { "": command, Buffer: `${command}Buffer` } as const;
  const call = (
    redis: RedisClient,
    suffix: "" | "Buffer",
    keys: readonly string[],
    args: readonly Arg[],
  ) => {
    let onClient = registered.get(redis);
    if (onClient === undefined) {
      onClient = new Set();
      registered.set(redis, onClient);
    }
    if (!onClient.has(command)) {
      redis.defineCommand(command, { lua });
      onClient.add(command);
    }
    const fn = (redis as unknown as Record<string, ScriptCommand>)[methods[suffix]]!;
    const flat: Arg[] = [keys.length];
    for (const key of keys) flat.push(key);
    for (const arg of args) flat.push(arg);
    const started = performance.now();
    const reply = fn.apply(redis, flat as [number, ...Arg[]]);
    reply.then(
      () => observeScript(command, (performance.now() - started) / 1000, false),
      () => observeScript(command, (performance.now() - started) / 1000, true),
    );
    return reply;
  };
  return {
    command,
    lua,
    run: (redis, keys, args) => call(redis, "", keys, args),
    runBuffer: (redis, keys, args) => call(redis, "Buffer", keys, args),
  };
}
