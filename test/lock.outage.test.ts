/**
 * The lock manager behind the shared failure switch, on a redis-server of this file's own:
 * Redis stopped mid-traffic → calls reject with StoreUnavailableError within timeoutMs, then
 * at once without touching Redis, except one probe per recheckMs; after a restart the same
 * manager is back on Redis as soon as its client is ready, before the next probe was due. Under CLIENT PAUSE (Redis alive, so INFO commandstats can count):
 * no call reaches Redis while degraded but the clean-ups, an extension refused reports the
 * lock lost, a release refused is still delivered, and a late waiter does not queue behind a
 * sleeping one.
 */
import type { Redis } from "ioredis";
import {
  createLockManager,
  type Lock,
  LockLostError,
  type LockManager,
  LockNotAcquiredError,
  RedisTimeoutError,
  StoreUnavailableError,
} from "../index.js";
import { featureStates } from "../stores/core/fallback.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  commandCalls,
  eventually,
  newRedis,
  quiet,
  ready,
  recordingLogger,
  testPrefix,
  wait,
} from "./helpers.js";

const TIMEOUT_MS = 400;
const MARGIN_MS = 400; // scheduling noise on a shared 2-core machine
const FAST_MS = TIMEOUT_MS / 2; // an answer that did not wait for Redis
const prefix = testPrefix(__filename);
let server: RedisServer;
let admin: Redis;
let managers: LockManager[] = [];
const unhandled = collectUnhandledRejections();

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  await closeClients();
  await server.stop();
});
afterEach(async () => {
  for (const m of managers) await m.close().catch(() => {});
  managers = [];
  await server.start(); // a no-op when running
  await ready(admin);
  expect(unhandled).toEqual([]);
});

/**
 * A manager whose client queues commands while Redis is down (only the deadline ends a wait)
 * and reconnects every 50 ms (back at once after a restart).
 */
function manager(recheckMs: number, logger: ReturnType<typeof recordingLogger> | typeof quiet) {
  const redis = newRedis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  const locks = createLockManager({ redis, prefix, timeoutMs: TIMEOUT_MS, recheckMs, logger });
  managers.push(locks);
  return { locks, redis };
}

/** Runs `fn`, resolving with how long it took and what it rejected with (if it did). */
async function timed(fn: () => Promise<unknown>) {
  const started = Date.now();
  try {
    await fn();
    return { ms: Date.now() - started, error: undefined as unknown };
  } catch (error) {
    return { ms: Date.now() - started, error };
  }
}

const lockKey = (resource: string) => `${prefix}{${resource}}`;
const degradedLocks = () =>
  featureStates().filter((s) => s.scope === "createLockManager" && s.state === "degraded");

it("Redis stopped mid-traffic: reject within timeoutMs, then at once; one probe per recheckMs; back on Redis after the restart", async () => {
  const RECHECK_MS = 3000; // longer than a restart: the probe window is known to be closed
  const logger = recordingLogger();
  const { locks, redis } = manager(RECHECK_MS, logger);
  // Traffic: four loops of acquire + release until told to stop; `until` resolves once the
  // calls so far satisfy a condition.
  const calls: { ms: number; error: unknown; afterStop: boolean }[] = [];
  let stopped = false;
  let running = true;
  let goal: { check: () => boolean; resolve: () => void } | undefined;
  const until = (check: () => boolean) =>
    new Promise<void>((resolve) => {
      goal = { check, resolve };
    });
  const loops = Array.from({ length: 4 }, async (_, i) => {
    while (running) {
      const afterStop = stopped;
      const call = await timed(async () => {
        const lock = await locks.acquire(`traffic-${i}`, { ttlMs: 5000 });
        await lock.release();
      });
      calls.push({ ...call, afterStop });
      if (goal?.check()) goal.resolve();
      await new Promise((resolve) => setImmediate(resolve)); // refusals are immediate: yield
    }
  });
  await until(() => calls.length >= 20);
  expect(calls.every((c) => c.error === undefined)).toBe(true);
  const failed = until(
    () => calls.filter((c) => c.afterStop && c.error !== undefined).length >= 40,
  );
  await server.stop();
  stopped = true;
  await failed;
  running = false;
  await Promise.all(loops);

  const after = calls.filter((c) => c.afterStop);
  // Nothing hangs: every call ended within the deadline, and every failure is the typed one.
  for (const c of after) expect(c.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  const failures = after.filter((c) => c.error !== undefined);
  for (const c of failures) expect(c.error).toBeInstanceOf(StoreUnavailableError);
  // At most one call per loop waited for Redis; all the others were refused at once.
  expect(after.filter((c) => c.ms >= FAST_MS).length).toBeLessThanOrEqual(4);
  expect(failures.filter((c) => c.ms < FAST_MS).length).toBeGreaterThanOrEqual(36);
  const last = failures.at(-1)!.error as StoreUnavailableError;
  expect(last.retryAfterMs).toBeGreaterThan(0);
  expect(last.retryAfterMs).toBeLessThanOrEqual(RECHECK_MS);
  const transitions = (what: string) =>
    logger.lines.filter((l) => l.startsWith(`${what} createLockManager: Redis `));
  expect(transitions("warn")).toHaveLength(1);
  expect(transitions("warn")[0]).toMatch(/Redis unavailable \(.+\); rejecting requests/);
  expect(degradedLocks()).toHaveLength(1);

  // Once the probe window opens (still down): one probe (the switch's own PING, or one of
  // these calls) waits for the deadline; none of the five calls waits longer, at most one waits.
  await wait(last.retryAfterMs + 20);
  const round = await Promise.all(
    Array.from({ length: 5 }, (_, i) => timed(() => locks.acquire(`probe-${i}`))),
  );
  for (const r of round) expect(r.error).toBeInstanceOf(StoreUnavailableError);
  expect(round.filter((r) => r.ms >= FAST_MS).length).toBeLessThanOrEqual(1);
  for (const r of round) expect(r.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  await wait(TIMEOUT_MS + 20); // the probe in flight has failed by now
  const late = await timed(() => locks.acquire("probe-after"));
  const probeError = late.error as StoreUnavailableError;
  expect(probeError.cause).toBeInstanceOf(RedisTimeoutError);
  expect(probeError.retryAfterMs).toBeGreaterThan(RECHECK_MS - TIMEOUT_MS - MARGIN_MS);

  // Restarted: the client's ready makes the switch probe at once, so the same manager is back
  // on Redis long before its next probe was due (RECHECK_MS after the last one): the lock is
  // the key in Redis, holding its token.
  const probeDue = performance.now() + probeError.retryAfterMs;
  await server.start();
  await ready(redis);
  let lock!: Lock;
  await eventually("the manager locks on Redis again", async () => {
    lock = await locks.acquire("back", { ttlMs: 5000 });
  });
  const acquiredAt = performance.now();
  expect(acquiredAt).toBeLessThan(probeDue);
  await ready(admin); // its own reconnect may lag behind the manager's
  expect(await admin.get(lockKey("back"))).toBe(lock.token);
  const pttl = await admin.pttl(lockKey("back"));
  expect(pttl).toBeGreaterThan(5000 - (performance.now() - acquiredAt) - MARGIN_MS);
  expect(pttl).toBeLessThanOrEqual(5000);
  expect(transitions("warn")).toHaveLength(1);
  expect(transitions("info")).toEqual([
    "info createLockManager: Redis answers again; back on Redis",
  ]);
  expect(degradedLocks()).toHaveLength(0);
  // And not degraded any more: contention is answered by Redis again, release deletes the key.
  const busy = await timed(() => locks.acquire("back"));
  expect(busy.error).toBeInstanceOf(LockNotAcquiredError);
  expect(await lock.release()).toBe(true);
  expect(await admin.exists(lockKey("back"))).toBe(0);
});

it("degraded (CLIENT PAUSE): no call reaches Redis but clean-ups; extend reports the loss; a refused release is still delivered", async () => {
  const { locks, redis } = manager(60_000, quiet); // no probe during this test
  // Warm the three scripts on this server (so each call below is one EVALSHA).
  const warm = await locks.acquire("warm", { ttlMs: 20_000 });
  await expect(locks.acquire("warm", { waitMs: 30 })).rejects.toThrow(LockNotAcquiredError);
  await warm.release();
  const held = await locks.acquire("held", { ttlMs: 20_000 });
  const kept = await locks.acquire("kept", { ttlMs: 20_000 }); // negative control
  await redis.ping(); // the background leave of the waiter above is done
  const before = await commandCalls(admin, "evalsha");

  await admin.client("PAUSE", 1500, "WRITE");
  const first = await timed(() => locks.acquire("a", { ttlMs: 20_000 }));
  expect(first.error).toBeInstanceOf(StoreUnavailableError);
  expect((first.error as StoreUnavailableError).cause).toBeInstanceOf(RedisTimeoutError);
  expect(first.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
  expect(first.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  // Degraded: refused at once, waiting or not, with the time to the next probe.
  const refused = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      timed(() => locks.acquire(`r${i % 3}`, i % 2 === 0 ? {} : { waitMs: 5000 })),
    ),
  );
  for (const r of refused) {
    expect(r.error).toBeInstanceOf(StoreUnavailableError);
    expect(r.ms).toBeLessThan(FAST_MS);
    expect((r.error as StoreUnavailableError).retryAfterMs).toBeGreaterThan(50_000);
  }
  // A held lock: its extension cannot be vouched for, so it is reported lost at once.
  const extended = await timed(() => held.extend());
  expect(extended.ms).toBeLessThan(FAST_MS);
  expect(held.lost).toBe(true);
  const reason = held.signal.reason as LockLostError;
  expect(reason).toBeInstanceOf(LockLostError);
  expect(reason.reason).toBe("extend-failed");
  expect(reason.cause).toBeInstanceOf(StoreUnavailableError);
  expect(await held.extend()).toBe(false);
  // Its release is refused too (false), but still sent, unwaited.
  const released = await timed(() => held.release());
  expect(released.ms).toBeLessThan(FAST_MS);
  expect(locks.stats()).toMatchObject({ acquired: 3, lost: 1 });

  await redis.ping(); // after the pause, and after every command this connection sent before
  // Sent: the timed-out acquire, its two clean-ups (release, leave), the refused release.
  // Without the switch, each refused acquire would have sent three more.
  expect((await commandCalls(admin, "evalsha")) - before).toBe(4);
  expect(await admin.exists(lockKey("a"))).toBe(0); // the late acquire was given back
  expect(await admin.exists(lockKey("held"))).toBe(0); // released 18 s before its TTL
  expect(await admin.get(lockKey("kept"))).toBe(kept.token); // untouched
});

it("degraded: a late waiter is refused at once, not queued behind one that sleeps", async () => {
  const { locks, redis } = manager(60_000, quiet);
  const holder = await locks.acquire("q", { ttlMs: 20_000 });
  // Releases are heard from now on, so a waiter that finds the lock held sleeps at once.
  await expect(locks.acquire("q", { waitMs: 300 })).rejects.toThrow(LockNotAcquiredError);
  // The first waiter tries, finds the lock held and sleeps (1 s, its lease renewal).
  const sleeper = timed(() => locks.acquire("q", { waitMs: 10_000 }));
  await redis.ping(); // its try was answered before this
  await new Promise((resolve) => setImmediate(resolve));
  expect(locks.stats().contended).toBe(2);
  await admin.client("PAUSE", 1500, "WRITE");
  await expect(locks.acquire("trip")).rejects.toThrow(StoreUnavailableError); // degraded now
  const late = await timed(() => locks.acquire("q", { waitMs: 10_000 }));
  expect(late.error).toBeInstanceOf(StoreUnavailableError);
  expect(late.ms).toBeLessThan(FAST_MS); // not the ~0.6 s left of the sleeper's nap
  // The sleeper is refused when it wakes to try again, well before its waitMs.
  const slept = await sleeper;
  expect(slept.error).toBeInstanceOf(StoreUnavailableError);
  expect(slept.ms).toBeLessThan(2000);
  expect(holder.lost).toBe(false);
});

it("the manager's ttlMs is the TTL of a lock acquired without one", async () => {
  const redis = newRedis(server.url);
  const locks = createLockManager({ redis, prefix, ttlMs: 4000, logger: quiet });
  managers.push(locks);
  const started = Date.now();
  const lock = await locks.acquire("ttl");
  const acquired = Date.now();
  const pttl = await admin.pttl(lockKey("ttl"));
  expect(pttl).toBeGreaterThan(3000);
  expect(pttl).toBeLessThanOrEqual(4000);
  // expiresAt counts from when acquire() sent its call: between these two instants + ttlMs.
  expect(lock.expiresAt).toBeGreaterThanOrEqual(started + 4000);
  expect(lock.expiresAt).toBeLessThanOrEqual(acquired + 4000);
  await lock.release();
});
