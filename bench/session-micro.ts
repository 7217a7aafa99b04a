/**
 * `npx tsx bench/session-micro.ts`: the session store's own cost per unmodified request,
 * without HTTP or express-session: `get` then `touch` (what express-session calls), 20,000
 * times with 50 in flight, on plain connect-redis and on `UserSessionStore`, and a lone
 * connect-redis `get` as the floor (one GET). Reports the process's CPU µs per operation;
 * three interleaved rounds, against its own redis-server. Run it pinned to a core
 * (`taskset -c 0 npx tsx bench/session-micro.ts`) for steadier numbers.
 */
import { RedisStore } from "connect-redis";
import type { SessionData } from "express-session";
import { Redis } from "ioredis";
import { UserSessionStore } from "../index.js";
import { startRedisServer } from "../test/harness/redis-server.js";

const OPS = 20_000;
const IN_FLIGHT = 50;

const server = await startRedisServer();
const redis = new Redis(server.url);
const plain = new RedisStore({ client: redis, prefix: "micro:plain:" });
const ours = new UserSessionStore({ client: redis, prefix: "micro:erk:", indexPrefix: "micro:u:" });
const session = {
  cookie: {
    originalMaxAge: 3_600_000,
    expires: new Date(Date.now() + 3_600_000).toISOString(),
    httpOnly: true,
    path: "/",
  },
  userId: "bench-user",
} as unknown as SessionData;
await plain.set("s1", session);
await ours.set("s1", session);

/** CPU µs per call of `op`, after a warm-up. */
async function measure(op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 2_000; i++) await op();
  const before = process.cpuUsage();
  let left = OPS;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) await op();
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / OPS;
}

const variants: [string, () => Promise<unknown>][] = [
  [
    "connect-redis get + touch",
    async () => plain.touch("s1", endOfRequest((await plain.get("s1")) as SessionData)),
  ],
  [
    "UserSessionStore get + touch",
    async () => ours.touch("s1", endOfRequest((await ours.get("s1")) as SessionData)),
  ],
  ["connect-redis get alone (floor)", () => plain.get("s1")],
];
const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let round = 0; round < 3; round++) {
  for (const [name, op] of variants) results.get(name)!.push(await measure(op));
}
for (const [name, values] of results) {
  const median = [...values].sort((a, b) => a - b)[1]!;
  console.log(
    `${name.padEnd(32)} ${median.toFixed(1)} µs CPU/op (rounds: ${values.map((v) => v.toFixed(1)).join(", ")})`,
  );
}
redis.disconnect();
await ours.close();
await server.stop();

/**
 * What express-session does to the cookie at the end of a request before `touch`: the expiry
 * moves to now + maxAge (a stored `expires` from start-up would be a different expiry, which
 * the touch contract must then write).
 */
function endOfRequest(session: SessionData): SessionData {
  const cookie = session.cookie as { expires?: Date | string; originalMaxAge?: number | null };
  if (typeof cookie.originalMaxAge === "number") {
    cookie.expires = new Date(Date.now() + cookie.originalMaxAge);
  }
  return session;
}
