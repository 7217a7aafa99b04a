/**
 * The cache's coherence readiness (stores/cache/coherence.ts) on a redis-server of this file's
 * own: a failed generation read (the cache's failure switch answered without Redis) does not
 * hold the cache back once the switch answers again, while a failed subscription is retried at
 * most once a second.
 */
import type { Redis } from "ioredis";
import { createRedisClient } from "../index.js";
import { Coherence } from "../stores/cache/coherence.js";
import { driverOf } from "../stores/core/drivers.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { quiet, testPrefix } from "./helpers.js";

const prefix = testPrefix(__filename);
let server: RedisServer;
let redis: Redis;
const coherences: Coherence[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisClient<Redis>({ url: server.url, logger: quiet }) as Redis;
});
afterAll(async () => {
  for (const c of coherences) await c.close();
  redis.disconnect();
  await server.stop();
});

const handlers = { filled() {}, purged() {}, purgedAll() {}, resync() {} };

/** A coherence whose generation reads answer from `answers` in turn, counting the reads. */
function coherence(name: string, answers: (number | undefined | Error)[]) {
  const reads = { count: 0 };
  const c = new Coherence(
    {
      redis: driverOf(redis),
      prefix: `${prefix}${name}:`,
      timeoutMs: 50,
      logger: quiet,
      readGeneration: async () => {
        reads.count++;
        const answer = answers.shift();
        if (answer instanceof Error) throw answer;
        return answer;
      },
    },
    handlers,
  );
  coherences.push(c);
  return { c, reads };
}

it("a failed generation read is tried again at the next request, not a second later", async () => {
  const { c, reads } = coherence("gen", [undefined, 7]);
  expect(await c.ready()).toBe(false); // the switch answered from memory: not known yet
  expect(await c.ready()).toBe(true); // the next request reads it again, at once
  expect(reads.count).toBe(2);
  expect(c.generation).toBe(7);
  expect(c.ready()).toBe(true); // known: no more reads
  expect(reads.count).toBe(2);
});

it("a load that fails otherwise (a read that throws) is not retried within the second", async () => {
  const { c, reads } = coherence("throws", [new Error("boom"), 7]);
  expect(await c.ready()).toBe(false);
  expect(await c.ready()).toBe(false); // throttled: not read again
  expect(reads.count).toBe(1);
});

it("a generation read that started before a resync is read again before the generation is known", async () => {
  const answers: ((generation: number) => void)[] = [];
  const c = new Coherence(
    {
      redis: driverOf(redis),
      prefix: `${prefix}epoch:`,
      timeoutMs: 50,
      logger: quiet,
      readGeneration: () => new Promise<number>((resolve) => answers.push(resolve)),
    },
    handlers,
  );
  coherences.push(c);
  const first = c.ready();
  await waitFor(() => answers.length === 1);
  // The subscriber reconnected meanwhile (what onResubscribed does): purges may have been missed.
  (c as unknown as { resync(): void }).resync();
  expect(c.ready()).toBe(first); // a request meanwhile waits on the same load
  answers[0]!(3);
  await waitFor(() => answers.length === 2); // read again, after the resync
  answers[1]!(4);
  expect(await first).toBe(true);
  expect(c.generation).toBe(4);
  expect(answers).toHaveLength(2);
});

/** Resolves once `check` holds (checked on each macrotask; the read is a microtask chain). */
async function waitFor(check: () => boolean) {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
}
