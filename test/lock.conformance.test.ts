/**
 * Distributed locks, the same assertions on memory, a standalone Redis and a 3-master Cluster
 * (each through ioredis and node-redis):
 * mutual exclusion under contention from 20 connections (with a negative control), fences,
 * expiry and takeover, waiting (bounded, FIFO, woken by releases), bad input.
 */
import {
  createLockManager,
  InvalidOptionError,
  LockLostError,
  type LockManager,
  LockNotAcquiredError,
} from "../index.js";
import {
  ALL_BACKENDS,
  type Backend,
  clientFor,
  closeClients,
  inspectorFor,
  quiet,
  testPrefix,
  wait,
} from "./helpers.js";

const managers: LockManager[] = [];
afterAll(async () => {
  for (const m of managers) await m.close();
  await closeClients();
});

/** Tracks holders of one resource: the most seen at once, and the fences in order. */
function tracker() {
  let holders = 0;
  const state = { maxHolders: 0, overlaps: 0, fences: [] as number[] };
  return {
    state,
    enter(fence: number) {
      holders++;
      if (holders > 1) state.overlaps++;
      state.maxHolders = Math.max(state.maxHolders, holders);
      state.fences.push(fence);
    },
    leave() {
      holders--;
    },
  };
}

const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

// iovalkey (the ioredis fork for Valkey) on the standalone server, too.
describe.each([...ALL_BACKENDS, "iovalkey"] as Backend[])("locks on %s", (backend) => {
  const prefix = testPrefix(`${__filename}-${backend}`);
  let n = 0;
  const client = () => clientFor(backend);
  const inspector = inspectorFor(backend);
  const shared = client();
  const manager = (redis = shared, p = `${prefix}${n++}:`) => {
    // Correctness under contention, not deadlines (lock.outage.test.ts): a generous timeoutMs,
    // so a stall of the shared test machine is not a Redis failure.
    const m = createLockManager({ redis, prefix: p, timeoutMs: 5000, logger: quiet });
    managers.push(m);
    return m;
  };

  it("callers of one process get the lock in the order they asked, even around a release", async () => {
    const locks = manager();
    const held = await locks.acquire("order", { ttlMs: 5000 });
    const order: string[] = [];
    // A asks while the lock is held; the release is sent after A's first try, and B asks
    // after that: B's try alone would find the lock free. A asked first, so A gets it first.
    const a = locks.acquire("order", { ttlMs: 5000, waitMs: 5000 }).then((lock) => {
      order.push("a");
      return lock;
    });
    const released = held.release();
    const b = locks.acquire("order", { ttlMs: 5000, waitMs: 5000 }).then((lock) => {
      order.push("b");
      return lock;
    });
    expect(await released).toBe(true);
    const first = await a;
    expect(order).toEqual(["a"]);
    await first.release();
    await (await b).release();
    expect(order).toEqual(["a", "b"]);
  });

  it("20 connections × 50 acquire→work→release cycles: never two holders, fences strictly increasing, no key left", async () => {
    const p = `${prefix}${n++}:`;
    const workers = Array.from({ length: 20 }, () => manager(client(), p));
    const t = tracker();
    await Promise.all(
      workers.map(async (locks) => {
        for (let i = 0; i < 50; i++) {
          const lock = await locks.acquire("shared", { ttlMs: 5000, waitMs: 30_000 });
          t.enter(lock.fence);
          await new Promise((resolve) => setImmediate(resolve)); // work: yield to the others
          t.leave();
          expect(await lock.release()).toBe(true);
        }
      }),
    );
    expect(t.state.overlaps).toBe(0);
    expect(t.state.fences).toHaveLength(1000);
    expect(increasing(t.state.fences)).toBe(true);
    if (inspector !== undefined) {
      const redis = inspector;
      expect(await redis.exists(`${p}{shared}`)).toBe(0);
      expect(await redis.pttl(`${p}{shared}:fence`)).toBeGreaterThan(0); // the fence outlives, with a TTL
    }
  }, 60_000);

  it("negative control: a TTL shorter than the work, without extension, lets holders overlap", async () => {
    // Deterministic: A keeps working (never releases) until B holds the lock, so the overlap
    // does not depend on how the machine schedules timers (four racing workers once saw none
    // under a loaded CI run).
    const p = `${prefix}${n++}:`;
    const a = await manager(shared, p).acquire("short", { ttlMs: 30 });
    const b = await manager(shared, p).acquire("short", { ttlMs: 5000, waitMs: 10_000 });
    // B holds it while A still works: two holders at once.
    expect(b.fence).toBeGreaterThan(a.fence);
    expect(await a.release()).toBe(false); // A's lock was gone before A was done
    expect(await b.release()).toBe(true);
  });

  // TTL 500 ms, extended every ~167 ms: tolerates an event-loop stall of ~330 ms on the shared
  // test machine (a longer stall really lets the lock expire, and the test would see it; with
  // 200 ms it did, twice, under a full `npm test` on 2 cores).
  it("the same with withLock (auto-extension) holds 3× the TTL without overlap or loss", async () => {
    const p = `${prefix}${n++}:`;
    const t = tracker();
    const lost: boolean[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const locks = manager(shared, p);
        await locks.withLock(
          "short",
          async (lock) => {
            t.enter(lock.fence);
            await wait(1500);
            lost.push(lock.lost);
            t.leave();
          },
          { ttlMs: 500, waitMs: 20_000 },
        );
      }),
    );
    expect(t.state.overlaps).toBe(0);
    expect(lost).toEqual([false, false, false, false]);
    expect(increasing(t.state.fences)).toBe(true);
  });

  it("A's lock expires, B acquires, A releases: B's lock is untouched and A is told", async () => {
    const locks = manager();
    const a = await locks.acquire("r", { ttlMs: 50 });
    const aborted = new Promise((resolve) => a.signal.addEventListener("abort", resolve));
    await aborted; // A's expiry is signalled
    expect(a.lost).toBe(true);
    expect(a.signal.reason).toBeInstanceOf(LockLostError);
    expect((a.signal.reason as LockLostError).reason).toBe("expired");
    // A's own clock gives up no later than Redis does: B may wait a moment for the key to go.
    const b = await locks.acquire("r", { ttlMs: 5000, waitMs: 1000 });
    expect(b.fence).toBeGreaterThan(a.fence);
    expect(await a.release()).toBe(false);
    expect(await a.extend()).toBe(false);
    await expect(locks.acquire("r")).rejects.toThrow(LockNotAcquiredError); // B still holds it
    expect(await b.release()).toBe(true);
  });

  it("extending a lock someone else now holds reports it lost", async () => {
    const locks = manager();
    const a = await locks.acquire("x", { ttlMs: 40 });
    await wait(60); // expired in the store; A's own timer may not have run yet
    const b = await locks.acquire("x", { ttlMs: 5000 });
    expect(await a.extend(1000)).toBe(false);
    expect(a.lost).toBe(true);
    expect(await b.release()).toBe(true);
  });

  it("fail fast by default; waitMs bounds the wait; retryAfterMs says when the holder's lock ends", async () => {
    const locks = manager();
    const holder = await locks.acquire("busy", { ttlMs: 3000 });
    const err = await locks.acquire("busy").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockNotAcquiredError);
    expect((err as LockNotAcquiredError).retryAfterMs).toBeGreaterThan(2000);
    expect((err as LockNotAcquiredError).resource).toBe("busy");
    const started = Date.now();
    await expect(locks.acquire("busy", { waitMs: 200 })).rejects.toThrow(LockNotAcquiredError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    const controller = new AbortController();
    const aborted = locks.acquire("busy", { waitMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(aborted).rejects.toThrow(LockNotAcquiredError);
    await holder.release();
  });

  it("a waiter is woken by the release, not by polling or the TTL", async () => {
    const locks = manager();
    const holder = await locks.acquire("wake", { ttlMs: 20_000 });
    const waiting = locks.acquire("wake", { waitMs: 10_000 });
    await wait(50);
    const released = Date.now();
    await holder.release();
    const next = await waiting;
    // Polling would find it at the waiter's next try, ~950 ms later (it tries every 1000 ms
    // and last tried 50 ms before the release); the TTL was 20 s.
    expect(Date.now() - released).toBeLessThan(500);
    await next.release();
  });

  it("waiters of one process get the lock in arrival order", async () => {
    const locks = manager();
    const holder = await locks.acquire("fifo", { ttlMs: 20_000 });
    const order: number[] = [];
    const waiters = [];
    for (let i = 0; i < 6; i++) {
      waiters.push(
        locks.acquire("fifo", { waitMs: 20_000 }).then(async (lock) => {
          order.push(i);
          await wait(5);
          await lock.release();
        }),
      );
      // No pause needed: a waiting caller joins the queue before its first await.
    }
    await holder.release();
    await Promise.all(waiters);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("a process that re-acquires in a loop does not starve a waiter of another connection", async () => {
    const p = `${prefix}${n++}:`;
    const looper = manager(client(), p);
    const waiter = manager(client(), p);
    let stop = false;
    let loops = 0;
    let looped!: () => void;
    const firstLoop = new Promise<void>((resolve) => {
      looped = resolve;
    });
    const looping = (async () => {
      while (!stop) {
        const lock = await looper.acquire("hot", { ttlMs: 5000 }).catch(() => undefined);
        if (lock === undefined) {
          await wait(2); // yielded to the waiter (or it holds the lock)
          continue;
        }
        loops++;
        looped();
        await wait(2);
        await lock.release();
      }
    })();
    await firstLoop; // the looper is cycling before the waiter arrives
    const got = await waiter.acquire("hot", { ttlMs: 5000, waitMs: 3000 });
    stop = true;
    await got.release();
    await looping;
    expect(loops).toBeGreaterThan(0);
  });

  it("withLock refuses a bad maxHoldMs before taking the lock", async () => {
    const locks = manager();
    await expect(locks.withLock("mh", async () => {}, { maxHoldMs: 0 })).rejects.toThrow(
      InvalidOptionError,
    );
    const lock = await locks.acquire("mh");
    await lock.release();
  });

  it("a lock whose extension stopped at maxHoldMs is reported lost as max-hold", async () => {
    const locks = manager();
    const reason = await locks
      .withLock(
        "held",
        (lock) =>
          new Promise((resolve) =>
            lock.signal.addEventListener("abort", () => resolve(lock.signal.reason)),
          ),
        { ttlMs: 150, maxHoldMs: 300 },
      )
      .catch((e: unknown) => e);
    expect((reason as LockLostError).reason).toBe("max-hold");
  });

  it("await using releases at scope end", async () => {
    const locks = manager();
    {
      const lock = await locks.acquire("scoped");
      await lock[Symbol.asyncDispose]();
    }
    const again = await locks.acquire("scoped");
    await again.release();
  });

  it("bad input is refused at the call", async () => {
    const locks = manager();
    for (const [resource, options, option] of [
      ["", {}, "resource"],
      ["x".repeat(2000), {}, "resource"],
      [42, {}, "resource"],
      ["r", { ttlMs: 0 }, "ttlMs"],
      ["r", { ttlMs: -5 }, "ttlMs"],
      ["r", { ttlMs: 1.5 }, "ttlMs"],
      ["r", { waitMs: -1 }, "waitMs"],
      ["r", { waitMs: 3e9 }, "waitMs"],
      ["r", { ttl: 5 }, "ttl"],
    ] as const) {
      const err = await locks
        .acquire(resource as string, options as object)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).option).toBe(option);
    }
    expect(() => createLockManager({ ttlMs: 0 })).toThrow(
      expect.objectContaining({ name: "InvalidOptionError", option: "ttlMs" }),
    );
    const lock = await locks.acquire("{odd}*\r\nname");
    expect(await lock.release()).toBe(true);
  });
});

it("createLockManager options: ttlMs (defaultTtlMs refused with a hint), the lockManager failure row", () => {
  expect(() => createLockManager({ defaultTtlMs: 5000 } as object)).toThrow(
    'createLockManager: unknown option "defaultTtlMs"; did you mean "ttlMs"? (express-redis-kit before 1.0\'s `defaultTtlMs`)',
  );
  expect(() => createLockManager({ onRedisError: "open" as "closed" })).toThrow(
    'createLockManager: onRedisError "open" is not offered here: acquire() cannot hand out a lock it does not hold; requireLock() offers open',
  );
  expect(() => createLockManager({ onRedisError: "memory" as "closed" })).toThrow(
    /onRedisError "memory" is not offered here/,
  );
  expect(() => createLockManager({ timeoutMs: -1 })).toThrow(
    /timeoutMs must be a positive integer/,
  );
  expect(() => createLockManager({ recheckMs: 0 })).toThrow(/recheckMs must be a positive integer/);
  // Negative control: the 1.0 names are accepted.
  expect(() =>
    createLockManager({ ttlMs: 5000, timeoutMs: 100, recheckMs: 100, onRedisError: "closed" }),
  ).not.toThrow();
});
