/**
 * One lock benchmark worker: `node --import tsx bench/lock-worker.ts <variant> <redisUrl>`.
 *
 * Connects its own client (`countingClient()` from `serve.ts`, which counts the commands it
 * sends: ioredis, node-redis for `erk-lock-nr`), builds the variant's lock, prints READY, then
 * answers the runner's commands, one JSON line each on stdin (see `WorkerCommand` in
 * `lock-variants.ts`), with one line on stdout starting with `REPLY_MARK`:
 *
 * - `cpu`: this process's CPU time;
 * - `uncontended`: a sequential loop of acquire+release on the resource, timed per iteration,
 *   with the CPU time of the whole loop (the runner sends a first one as warm-up);
 * - `batch`: one acquire (waiting while another worker holds the lock), a hold of `holdMs`,
 *   one release, with the times of each step on the machine-wide monotonic clock.
 *
 * Exits when its standard input closes (so it never outlives the runner), on SIGTERM or SIGINT.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import {
  type BatchReply,
  ERK_PREFIX,
  isLockVariant,
  type LockVariant,
  REDLOCK_TUNED,
  REPLY_MARK,
  RESOURCE,
  TTL_MS,
  type UncontendedReply,
  WAIT_MS,
  type WorkerCommand,
  type WorkerReply,
} from "./lock-variants.js";
import { kitLib } from "./scenario.js";
import { countingClient, ioredisOf, type NodeRedis } from "./serve.js";

/** Acquires the resource (waiting as the variant waits); resolves with its release. */
type Acquire = () => Promise<() => Promise<boolean>>;

interface Locker {
  acquire: Acquire;
  close(): Promise<void>;
}

/**
 * The floor's acquire: set the lock to a token unless it exists. KEYS[1]: the lock; ARGV[1]: the
 * token; ARGV[2]: TTL, ms. Returns 1 when acquired, 0 when held.
 */
const FLOOR_ACQUIRE_LUA = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

/** The floor's release: delete the lock if it still holds our token. KEYS[1]: the lock; ARGV[1]: the token. Returns 1 when released. */
const FLOOR_RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type FloorClient = {
  floorAcquire(key: string, token: string, ttlMs: number): Promise<number>;
  floorRelease(key: string, token: string): Promise<number>;
};

async function lockerFor(variant: LockVariant, redis: Redis | NodeRedis): Promise<Locker> {
  switch (variant) {
    case "floor": {
      const io = ioredisOf(redis);
      io.defineCommand("floorAcquire", { numberOfKeys: 1, lua: FLOOR_ACQUIRE_LUA });
      io.defineCommand("floorRelease", { numberOfKeys: 1, lua: FLOOR_RELEASE_LUA });
      const floor = io as unknown as FloorClient;
      const key = `floor:${RESOURCE}`;
      let n = 0;
      return {
        acquire: async () => {
          const token = `${process.pid}:${n++}`;
          if ((await floor.floorAcquire(key, token, TTL_MS)) !== 1)
            throw new Error("floor: the lock is held (the floor does not wait)");
          return async () => (await floor.floorRelease(key, token)) === 1;
        },
        close: async () => {},
      };
    }
    case "erk-lock":
    case "erk-lock-nr": {
      const { createLockManager } = kitLib();
      const locks = createLockManager({ redis, prefix: ERK_PREFIX });
      return {
        acquire: async () => {
          const lock = await locks.acquire(RESOURCE, { ttlMs: TTL_MS, waitMs: WAIT_MS });
          return () => lock.release();
        },
        close: () => locks.close(),
      };
    }
    case "redlock":
    case "redlock-tuned": {
      const { default: Redlock } = await import("redlock");
      const redlock = new Redlock(
        [ioredisOf(redis)],
        variant === "redlock-tuned" ? REDLOCK_TUNED : {},
      );
      return {
        acquire: async () => {
          const lock = await redlock.acquire([RESOURCE], TTL_MS);
          return async () => {
            await lock.release(); // throws when not held on a quorum (here: the one client)
            return true;
          };
        },
        close: async () => {},
      };
    }
    case "redis-semaphore": {
      const { Mutex } = await import("redis-semaphore");
      return {
        acquire: async () => {
          const mutex = new Mutex(ioredisOf(redis), RESOURCE, { lockTimeout: TTL_MS });
          await mutex.acquire();
          return async () => {
            await mutex.release();
            return true;
          };
        },
        close: async () => {},
      };
    }
  }
}

const now = () => process.hrtime.bigint();

async function main(): Promise<void> {
  const [variant = "", url = ""] = process.argv.slice(2);
  if (!isLockVariant(variant) || !url.startsWith("redis://127.0.0.1:")) {
    throw new Error(
      `usage: lock-worker.ts <variant> redis://127.0.0.1:<port> (got ${process.argv.slice(2).join(" ")})`,
    );
  }
  // Counts what the client sends: one command per round trip (scripts count once).
  const { redis, sent, close } = await countingClient(url, variant);
  const locker = await lockerFor(variant, redis);

  const reply = (message: WorkerReply) => {
    process.stdout.write(`${REPLY_MARK}${JSON.stringify(message)}\n`);
  };

  const uncontended = async (iterations: number): Promise<UncontendedReply> => {
    let releaseNotHeld = 0;
    const samplesUs: number[] = [];
    const sentBefore = sent();
    const cpuBefore = process.cpuUsage();
    for (let i = 0; i < iterations; i++) {
      const started = now();
      const release = await locker.acquire();
      const held = await release();
      samplesUs.push(Math.round(Number(now() - started) / 100) / 10);
      if (!held) releaseNotHeld++;
    }
    const cpu = process.cpuUsage(cpuBefore);
    return {
      type: "uncontended",
      samplesUs,
      sent: sent() - sentBefore,
      cpuUs: cpu.user + cpu.system,
      releaseNotHeld,
    };
  };

  const batch = async (holdMs: number): Promise<BatchReply> => {
    const sentBefore = sent();
    const requestedAt = now();
    try {
      const release = await locker.acquire();
      const acquiredAt = now();
      await sleep(holdMs);
      const releaseCalledAt = now();
      const held = await release();
      const releasedAt = now();
      return {
        type: "batch",
        requestedAt: String(requestedAt),
        acquiredAt: String(acquiredAt),
        releaseCalledAt: String(releaseCalledAt),
        releasedAt: String(releasedAt),
        releaseHeld: held,
        sent: sent() - sentBefore,
      };
    } catch (error) {
      return {
        type: "batch",
        requestedAt: String(requestedAt),
        sent: sent() - sentBefore,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      };
    }
  };

  let closing = false;
  const shutdown = (code: number) => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(code), 1000).unref();
    void locker
      .close()
      .catch(() => {})
      .finally(() => {
        close();
        process.exit(code);
      });
  };
  process.once("SIGTERM", () => shutdown(0));
  process.once("SIGINT", () => shutdown(0));

  // One command at a time, in order.
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    const command = JSON.parse(line) as WorkerCommand;
    queue = queue.then(async () => {
      try {
        switch (command.cmd) {
          case "cpu": {
            const { user, system } = process.cpuUsage();
            reply({ type: "cpu", cpuUs: user + system });
            return;
          }
          case "uncontended":
            reply(await uncontended(command.iterations));
            return;
          case "batch":
            reply(await batch(command.holdMs));
            return;
        }
      } catch (error) {
        reply({
          type: "error",
          message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
      }
    });
  });
  lines.on("close", () => shutdown(0));
  process.stdout.write("READY\n");
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench lock worker failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
