/**
 * What `replicas: { count: 1 }` costs a lock grant, on a Sentinel group (1 master, 1 replica)
 * started here: acquire + release, one at a time and 8 at a time, with and without
 * acknowledgement, in interleaved rounds. Prints the median per-call latency and the calls per
 * second of each, and their ratio.
 *
 *   npx tsx bench/replicas-latency.ts            (ROUNDS=5, CALLS=2000)
 */
import { closeRedisClient, createLockManager, createRedisClient } from "../index.js";
import { startRedisSentinel } from "../test/harness/redis-sentinel.ts";

const rounds = Number(process.env.ROUNDS ?? 5);
const calls = Number(process.env.CALLS ?? 2000);
const quiet = { info() {}, warn() {}, error() {} };

const group = await startRedisSentinel();
const redis = createRedisClient({
  sentinel: { name: group.name, nodes: group.sentinels },
  logger: quiet,
});
const managers = {
  plain: createLockManager({ redis, prefix: "lat:p:", logger: quiet }),
  acked: createLockManager({ redis, prefix: "lat:a:", logger: quiet, replicas: { count: 1 } }),
};
type Name = keyof typeof managers;

async function run(name: Name, parallel: number): Promise<number> {
  const manager = managers[name];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < calls) {
        const n = next++;
        await (await manager.acquire(`r${n % 64}-${parallel}`)).release();
      }
    }),
  );
  return (performance.now() - started) / calls; // ms per call
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
for (const parallel of [1, 8]) {
  await run("plain", parallel); // warm-up: scripts loaded, connections open
  await run("acked", parallel);
  const ms: Record<Name, number[]> = { plain: [], acked: [] };
  for (let r = 0; r < rounds; r++) {
    for (const name of (r % 2 === 0 ? ["plain", "acked"] : ["acked", "plain"]) as Name[]) {
      ms[name].push(await run(name, parallel));
    }
  }
  const p = median(ms.plain);
  const a = median(ms.acked);
  process.stdout.write(
    `${parallel} at a time: ${p.toFixed(3)} ms per acquire+release without, ${a.toFixed(3)} ms with replicas (x${(a / p).toFixed(2)}); ${Math.round(1000 / p)} vs ${Math.round(1000 / a)} per second\n`,
  );
}
await managers.plain.close();
await managers.acked.close();
closeRedisClient(redis);
await group.stop();
process.exit(0);
