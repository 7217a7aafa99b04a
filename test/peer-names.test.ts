/**
 * Migration hints: an unknown option that is a peer's name (express-rate-limit,
 * rate-limit-redis, rate-limiter-flexible, apicache, connect-redis, node-redlock, or this
 * package before 1.0) fails with InvalidOptionError naming ours and whose name it was.
 */
import {
  cacheResponse,
  createLockManager,
  createPubSub,
  createRateLimiter,
  createSessionStore,
  InvalidOptionError,
  rateLimit,
  requireLock,
} from "../index.js";

const factories = {
  rateLimit: (o: object) => rateLimit({ limit: 1, windowMs: 1000, ...o }),
  createRateLimiter: (o: object) => createRateLimiter({ limit: 1, windowMs: 1000, ...o }),
  cacheResponse: (o: object) => cacheResponse(o),
  requireLock: (o: object) => requireLock({ key: () => "r", ...o }),
  createLockManager: (o: object) => createLockManager(o),
  createSessionStore: (o: object) => createSessionStore(o),
  createPubSub: (o: object) => createPubSub(o),
} as const;

/** What each call throws (it must throw). */
function thrown(factory: keyof typeof factories, options: object): InvalidOptionError {
  try {
    factories[factory](options);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionError);
    return err as InvalidOptionError;
  }
  throw new Error(`${factory}(${JSON.stringify(options)}) did not throw`);
}

it.each<[keyof typeof factories, string, string]>([
  [
    "rateLimit",
    "standardHeaders",
    `rateLimit: unknown option "standardHeaders"; did you mean "headers"? (express-rate-limit's \`standardHeaders\``,
  ],
  ["rateLimit", "max", `did you mean "limit"? (express-rate-limit's \`max\`)`],
  ["rateLimit", "keyGenerator", `did you mean "key"? (express-rate-limit's \`keyGenerator\`)`],
  ["rateLimit", "passOnStoreError", `did you mean "onRedisError"?`],
  ["rateLimit", "store", `did you mean "redis"? (express-rate-limit's \`store\``],
  ["rateLimit", "sendCommand", `did you mean "redis"? (rate-limit-redis's \`sendCommand\``],
  ["createRateLimiter", "points", `did you mean "limit"? (rate-limiter-flexible's \`points\`)`],
  [
    "createRateLimiter",
    "duration",
    `did you mean "windowMs"? (rate-limiter-flexible's \`duration\`: in milliseconds here`,
  ],
  ["createRateLimiter", "keyPrefix", `did you mean "prefix"?`],
  ["cacheResponse", "redisClient", `did you mean "redis"? (apicache's \`redisClient\`)`],
  ["cacheResponse", "defaultDuration", `did you mean "ttlMs"? (apicache's \`defaultDuration\``],
  ["cacheResponse", "appendKey", `did you mean "key"? (apicache's \`appendKey\`)`],
  ["createSessionStore", "store", `did you mean "redis"? (express-session's \`store\``],
  ["createLockManager", "retryCount", `(node-redlock's \`retryCount\`: pass waitMs to acquire()`],
  ["requireLock", "retryDelay", `did you mean "waitMs"? (node-redlock's \`retryDelay\``],
  ["requireLock", "status", `did you mean "statusCode"? (express-redis-kit before 1.0's`],
  ["requireLock", "onLocked", `did you mean "handler"?`],
  ["createLockManager", "defaultTtlMs", `did you mean "ttlMs"?`],
  ["createPubSub", "client", `did you mean "redis"? (connect-redis's \`client\`)`],
])("%s({ %s }) names ours", (factory, option, message) => {
  const err = thrown(factory, { [option]: 1 });
  expect(err.message).toContain(message);
  expect(err.option).toBe(option);
});

it("a name with no equivalent says so; a typo still gets the closest name", () => {
  expect(thrown("rateLimit", { validate: true }).message).toMatch(
    /\(express-rate-limit's `validate`: .*; there is no equivalent option here\)$/,
  );
  expect(thrown("rateLimit", { limitt: 3 }).message).toBe(
    'rateLimit: unknown option "limitt"; did you mean "limit"?',
  );
});

it.each(["toString", "constructor", "valueOf", "hasOwnProperty"])(
  "an option named %s is an unknown option, never a TypeError",
  (name) => {
    expect(thrown("rateLimit", { [name]: 1 }).message).toMatch(
      new RegExp(`^rateLimit: unknown option "${name}"`),
    );
  },
);
