/**
 * Option names of the libraries users migrate from (express-rate-limit, rate-limit-redis,
 * rate-limiter-flexible, apicache, connect-redis, node-redlock) and of this package before 1.0,
 * each mapped to the option that does the same here. `rejectUnknown()` turns a peer's name into
 * a hint ("did you mean `headers`? (express-rate-limit's `standardHeaders`)") instead of a bare
 * "unknown option".
 */

/** One peer option: our option (or `undefined` when there is none) and what to say. */
interface PeerName {
  /** Our option that does the same, when the factory has it. */
  ours?: string;
  /** Whose name it is, e.g. `express-rate-limit`. */
  peer: string;
  /** What else to know (units, values), shown after the hint. */
  note?: string;
  /** Applies only to a factory that has this option (e.g. `limit`: a rate limiter). */
  when?: string;
}

const ERL = "express-rate-limit";
const RLR = "rate-limit-redis";
const RLF = "rate-limiter-flexible";
const APICACHE = "apicache";
const REDLOCK = "node-redlock";
const OURS = "express-redis-kit before 1.0";

/** Peer option name → the candidates here, first match among the factory's options wins. */
const PEER_NAMES: Readonly<Record<string, readonly PeerName[]>> = {
  // express-rate-limit
  standardHeaders: [
    { ours: "headers", peer: ERL, note: 'the same values: "draft-6", "draft-7", "draft-8"' },
  ],
  legacyHeaders: [{ ours: "headers", peer: ERL, note: 'headers: "legacy" sends X-RateLimit-*' }],
  max: [{ ours: "limit", peer: ERL }],
  keyGenerator: [{ ours: "key", peer: ERL }],
  message: [{ ours: "handler", peer: ERL, note: "answer the rejection in handler(req, res)" }],
  store: [
    { ours: "redis", peer: ERL, note: "pass the Redis client itself", when: "limit" },
    {
      ours: "redis",
      peer: "express-session",
      note: "pass the Redis client itself",
      when: "disableTouch",
    },
  ],
  passOnStoreError: [{ ours: "onRedisError", peer: ERL, note: 'true is onRedisError: "open"' }],
  identifier: [{ ours: "headers", peer: ERL, note: "the policy name comes from policies[].name" }],
  validate: [{ peer: ERL, note: "checks run once at construction and warn with codes" }],
  requestPropertyName: [{ peer: ERL, note: "the result is at req.rateLimit" }],
  retryAfter: [{ peer: ERL, note: "Retry-After is always sent on a rejection" }],
  // rate-limit-redis
  sendCommand: [{ ours: "redis", peer: RLR, note: "pass the Redis client itself" }],
  resetExpiryOnChange: [{ peer: RLR, note: "windows are fixed by windowMs" }],
  sendCommandCluster: [{ ours: "redis", peer: RLR, note: "pass the Cluster client itself" }],
  // rate-limiter-flexible
  points: [{ ours: "limit", peer: RLF }],
  duration: [{ ours: "windowMs", peer: RLF, note: "in milliseconds here, not seconds" }],
  blockDuration: [{ ours: "blockDurationMs", peer: RLF, note: "in milliseconds here" }],
  storeClient: [{ ours: "redis", peer: RLF }],
  keyPrefix: [{ ours: "prefix", peer: RLF }],
  insuranceLimiter: [{ ours: "onRedisError", peer: RLF, note: '"memory" is the built-in one' }],
  inMemoryBlockOnConsumed: [
    { peer: RLF, note: "a rejection is checked in the same script; blockDurationMs blocks a key" },
  ],
  useRedisPackage: [{ ours: "redis", peer: RLF, note: "the client library is recognised" }],
  useRedis3AndLowerPackage: [{ peer: RLF, note: "node-redis 5 and 6 are supported" }],
  inMemoryBlockDuration: [{ ours: "blockDurationMs", peer: RLF }],
  rejectIfRedisNotReady: [{ ours: "onRedisError", peer: RLF, note: 'true is "closed"' }],
  execEvenly: [{ peer: RLF, note: "rejected requests are answered at once" }],
  execEvenlyMinDelayMs: [{ peer: RLF, note: "rejected requests are answered at once" }],
  // apicache
  redisClient: [{ ours: "redis", peer: APICACHE }],
  defaultDuration: [{ ours: "ttlMs", peer: APICACHE, note: "in milliseconds" }],
  appendKey: [{ ours: "key", peer: APICACHE }],
  statusCodes: [{ ours: "statuses", peer: APICACHE, note: "a list of statuses to store" }],
  debug: [{ ours: "logger", peer: APICACHE }],
  enabled: [{ peer: APICACHE, note: "mount the middleware only where it should run" }],
  headerBlacklist: [{ peer: APICACHE, note: "Set-Cookie responses are never stored" }],
  trackPerformance: [{ peer: APICACHE, note: "counters are always kept: mw.stats()" }],
  respectCacheControl: [
    {
      peer: APICACHE,
      note: "a request's Cache-Control: no-cache does not bypass this shared cache (RFC 9111 lets it serve); purge instead",
    },
  ],
  headers: [{ peer: APICACHE, note: "the handler sets its own Cache-Control" }],
  // connect-redis: `client` is accepted where a store is built; elsewhere:
  client: [{ ours: "redis", peer: "connect-redis" }],
  // node-redlock
  retryCount: [
    { ours: "waitMs", peer: REDLOCK, note: "wait by time, woken on release" },
    { peer: REDLOCK, note: "pass waitMs to acquire(): a wait by time, woken on release" },
  ],
  retryDelay: [
    { ours: "waitMs", peer: REDLOCK, note: "wait by time, woken on release" },
    { peer: REDLOCK, note: "pass waitMs to acquire(): a wait by time, woken on release" },
  ],
  retryJitter: [
    { ours: "waitMs", peer: REDLOCK },
    { peer: REDLOCK, note: "pass waitMs to acquire(): waiters are woken on release" },
  ],
  driftFactor: [{ peer: REDLOCK, note: "one Redis (or Cluster), fenced tokens; no drift" }],
  automaticExtensionThreshold: [
    { ours: "autoExtend", peer: REDLOCK },
    { peer: REDLOCK, note: "withLock() extends while the function runs" },
  ],
  // this package before 1.0
  status: [{ ours: "statusCode", peer: OURS }],
  onLocked: [{ ours: "handler", peer: OURS }],
  defaultTtlMs: [{ ours: "ttlMs", peer: OURS }],
};

/**
 * The hint for an unknown option that is a peer's name, or `undefined`:
 * `; did you mean "headers"? (express-rate-limit's \`standardHeaders\`: …)`.
 */
export function peerHint(name: string, known: readonly string[]): string | undefined {
  if (!Object.hasOwn(PEER_NAMES, name)) return undefined; // never "toString" and the like
  const candidates = PEER_NAMES[name] ?? [];
  const match = candidates.find(
    (c) =>
      (c.ours === undefined || known.includes(c.ours)) &&
      (c.when === undefined || known.includes(c.when)),
  );
  if (match === undefined) return undefined;
  const note = match.note === undefined ? "" : `: ${match.note}`;
  const whose = `${match.peer}'s \`${name}\`${note}`;
  return match.ours === undefined
    ? ` (${whose}; there is no equivalent option here)`
    : `; did you mean ${JSON.stringify(match.ours)}? (${whose})`;
}
