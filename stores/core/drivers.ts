/**
 * `driverOf(client)`: recognises a client by its shape and returns its `RedisDriver` (see
 * driver.ts), one per client, shared by every feature that uses it.
 */
import type { RedisDriver } from "./driver.js";
import { ioredisDriver } from "./driver-ioredis.js";
import { nodeRedisDriver } from "./driver-node-redis.js";
import { InvalidOptionError } from "./errors.js";
import { show } from "./options.js";

/**
 * Any client the kit accepts, checked by shape at construction: an ioredis 5/6 or iovalkey
 * `Redis` (standalone or built with `sentinels`) or `Cluster`, or a connected node-redis 5/6
 * client from `createClient()`, `createCluster()` or `createSentinel()`.
 */
export type RedisClient =
  | { defineCommand(...args: never[]): unknown; duplicate(...args: never[]): unknown }
  | { sendCommand(...args: never[]): Promise<unknown>; readonly isOpen: boolean };

/** What every `redis` / `client` option accepts, for error messages. */
export const ACCEPTED_CLIENTS =
  "an ioredis 5/6 or iovalkey Redis or Cluster client, or a connected node-redis 5/6 client from createClient(), createCluster() or createSentinel()";

const adapters = [ioredisDriver, nodeRedisDriver];
const drivers = new WeakMap<object, RedisDriver>();

/**
 * The driver of `client`. Throws `InvalidOptionError` naming `scope` and `name` for anything
 * that is not an accepted client, a node-redis client that is not connected, or a closed client.
 */
export function driverOf(client: unknown, scope = "redis", name = "redis"): RedisDriver {
  if (typeof client === "object" && client !== null) {
    const known = drivers.get(client);
    if (known !== undefined) return known;
    for (const adapter of adapters) {
      let driver: RedisDriver | undefined;
      try {
        driver = adapter(client);
      } catch (err) {
        if (!(err instanceof InvalidOptionError)) throw err;
        throw new InvalidOptionError(`${scope}: ${name}: ${err.message}`, name);
      }
      if (driver !== undefined) {
        drivers.set(client, driver);
        return driver;
      }
    }
  }
  throw new InvalidOptionError(
    `${scope}: ${name} must be ${ACCEPTED_CLIENTS} (got ${describe(client)})`,
    name,
  );
}

/** A short description of a rejected value: its class name when it has one. */
function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor;
    const name = typeof ctor?.name === "string" && ctor.name !== "Object" ? ctor.name : undefined;
    return name === undefined ? `an object with keys ${show(Object.keys(value))}` : `a ${name}`;
  }
  return show(value);
}
