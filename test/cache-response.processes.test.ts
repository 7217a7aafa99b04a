/**
 * cacheResponse() across OS processes, on the harness's standalone server and on its Cluster:
 * concurrent misses in four processes run the handler once (the Redis fill lock and the
 * pub/sub wake-up), and a purge by tag in one process empties another process's memory tier
 * (the pub/sub invalidation). The processes run test/fixtures/cache-server.ts.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { request } from "node:http";
import { resolve } from "node:path";
import type { Cluster, Redis } from "ioredis";
import { keyPart } from "../index.js";
import {
  closeClients,
  clusterNodes,
  newCluster,
  newRedis,
  redisUrl,
  testPrefix,
  wait,
} from "./helpers.js";

const root = resolve(__dirname, "..");
const fixture = resolve(__dirname, "fixtures/cache-server.ts");
/** The cache key includes Host: every process must see the same one. */
const HOST = "example.test";
const PROCESSES = 4;
const PER_PROCESS = 25;

interface Reply {
  status: number;
  xCache: string | undefined;
  cacheStatus: string | undefined;
  body: string;
}

interface CacheStats {
  hits: number;
  misses: number;
  coalesced: number;
  validations: number;
  notModified: number;
  stored: number;
  errors: number;
  state: string;
  memoryEntries: number;
}

interface ServerStats {
  coalesced: CacheStats;
  uncoalesced: CacheStats;
  tagged: CacheStats;
  validated: CacheStats;
  received: { fills: string[]; tags: number };
}

interface AppProcess {
  port: number;
  child: ChildProcessWithoutNullStreams;
  stderr: () => string;
}

/** Every process spawned by this file, killed in afterAll whatever happened. */
const children = new Set<ChildProcessWithoutNullStreams>();

/** One HTTP request on its own connection (no pooling: 100 of them really run at once). */
function http(port: number, path: string, method = "GET", json?: unknown): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const payload = json === undefined ? undefined : JSON.stringify(json);
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method,
        agent: false,
        headers: {
          Host: HOST,
          ...(payload === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () =>
          resolvePromise({
            status: res.statusCode ?? 0,
            xCache: res.headers["x-cache"] as string | undefined,
            cacheStatus: res.headers["cache-status"] as string | undefined,
            body,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function stats(server: AppProcess): Promise<ServerStats> {
  return JSON.parse((await http(server.port, "/stats")).body) as ServerStats;
}

/**
 * Polls `check` every 20 ms until it returns true, for at most `ms`. Used only where the
 * event happens in another process and is observable only through its /stats route.
 */
async function until(what: string, check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await wait(20);
  }
}

/** Spawns one fixture process and resolves once it listens. */
async function startProcess(env: Record<string, string | undefined>): Promise<AppProcess> {
  // Never let the children pick up a server from the environment (nor 127.0.0.1:6379).
  const { REDIS_URL: _url, REDIS_CLUSTER_NODES: _nodes, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", fixture], {
    cwd: root,
    env: { ...inherited, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`fixture did not listen within 15 s:\n${stdout}\n${stderr}`)),
      15_000,
    );
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening (\d+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolvePromise(Number(match[1]));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`fixture exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  return { port, child, stderr: () => stderr };
}

/** SIGTERM, then SIGKILL if a child has not exited within 3 s. */
async function stopAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      children.delete(child);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

afterAll(async () => {
  await stopAll();
  await closeClients();
});

/** Every key matching `pattern` on a standalone server (SCAN, never KEYS). */
async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys.sort();
}

/** The tag index of `tag` under a cache prefix (layout documented in stores/cache/redis.ts). */
const tagIndex = (cachePrefix: string, tag: string) => `${cachePrefix}t:{${keyPart(tag)}}`;

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const count = (values: (string | undefined)[], value: string) =>
  values.filter((v) => v === value).length;

describe.each(["standalone", "cluster"] as const)(
  "cacheResponse across processes on %s",
  (backend) => {
    const prefix = testPrefix(__filename);
    let redis: Redis | Cluster;
    let servers: AppProcess[] = [];

    const runs = async (name: string) => Number((await redis.get(`${prefix}runs:${name}`)) ?? 0);

    beforeAll(async () => {
      redis = backend === "standalone" ? newRedis() : newCluster();
      const env =
        backend === "standalone"
          ? { ERK_FIXTURE_REDIS_URL: redisUrl() }
          : {
              ERK_FIXTURE_CLUSTER_NODES: clusterNodes()
                .map((n) => `${n.host}:${n.port}`)
                .join(","),
            };
      servers = await Promise.all(
        Array.from({ length: PROCESSES }, () =>
          startProcess({ ...env, ERK_FIXTURE_PREFIX: prefix }),
        ),
      );
      // Each cache reads its generation on its first request and bypasses until then, which is
      // not what this file tests: warm every cache of every process first. No event says when a
      // cache is ready, so poll its no-store route until it answers from Redis.
      await Promise.all(
        servers.flatMap((server) =>
          (["coalesced", "uncoalesced", "tagged", "validated"] as const).map((name) =>
            until(`${name} on :${server.port} to be ready`, async () => {
              const reply = await http(server.port, `/warm/${name}`);
              return reply.xCache === "MISS" && (await stats(server))[name].state === "redis";
            }),
          ),
        ),
      );
    }, 20_000);

    afterAll(async () => {
      // The processes log to stderr only when something is off (Redis unavailable, a failed
      // store): show it, it explains a failure here.
      const logs = servers.map((s) => s.stderr()).join("");
      if (logs !== "") console.warn(`cacheResponse processes on ${backend} logged:\n${logs}`);
      await stopAll();
    });

    /** 25 concurrent GETs of `path` to each process, all issued before any answers. */
    const burst = (path: string) =>
      Promise.all(
        servers.flatMap((s) => Array.from({ length: PER_PROCESS }, () => http(s.port, path))),
      );

    it("runs the handler once for 100 concurrent misses in 4 processes", async () => {
      // Warm-up requests count too (and may have waited for each other): compare deltas.
      const before = await Promise.all(servers.map(stats));
      const replies = await burst("/coalesced");

      expect(await runs("coalesced")).toBe(1);
      expect(replies.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(new Set(replies.map((r) => r.body)).size).toBe(1);
      expect(JSON.parse(replies[0]!.body)).toMatchObject({ route: "coalesced" });
      const xCache = replies.map((r) => r.xCache);
      expect([count(xCache, "MISS"), count(xCache, "HIT")]).toEqual([1, 99]);
      // The 99 hits all waited for the fill (none arrived after it): the misses were concurrent.
      expect(replies.filter((r) => /; collapsed/.test(r.cacheStatus ?? "")).length).toBe(99);
      const after = await Promise.all(servers.map(stats));
      const delta = (field: "coalesced" | "stored" | "errors") =>
        after.map((s, i) => s.coalesced[field] - before[i]!.coalesced[field]);
      expect(sum(delta("coalesced"))).toBe(99);
      expect(sum(delta("stored"))).toBe(1);
      expect(delta("errors")).toEqual([0, 0, 0, 0]);

      // Redis: one entry, indexed under its URL tag; its fill lock was released, no other lock.
      const cachePrefix = `${prefix}c:`;
      const entries = await redis.zrange(tagIndex(cachePrefix, "url:/coalesced"), "0", "-1");
      expect(entries).toHaveLength(1);
      const entry = entries[0]!;
      expect(entry).toMatch(/^.+c:\{[A-Za-z0-9_-]{27}\}$/);
      expect(await redis.exists(entry)).toBe(1);
      expect(await redis.exists(`${entry}:lock`)).toBe(0);
      if (backend === "standalone") {
        const keys = await scanKeys(redis as Redis, `${cachePrefix}*`);
        expect(keys).toEqual([entry, tagIndex(cachePrefix, "url:/coalesced")].sort());
        expect(keys.filter((k) => k.endsWith(":lock"))).toEqual([]);
      }
    });

    it("100 concurrent requests on an entry that must be revalidated, in 4 processes: one validation, answered 304", async () => {
      const [a] = servers as [AppProcess];
      const first = await http(a.port, "/validated");
      expect(first.xCache).toBe("MISS");
      expect(await runs("validated")).toBe(1);
      const before = await Promise.all(servers.map(stats));
      const replies = await burst("/validated");

      // The no-cache entry is never used unvalidated: the handler ran once more, for all 100.
      expect(await runs("validated")).toBe(2);
      expect(replies.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(new Set(replies.map((r) => r.body))).toEqual(new Set([first.body]));
      const xCache = replies.map((r) => r.xCache);
      expect([count(xCache, "REVALIDATED"), count(xCache, "HIT")]).toEqual([1, 99]);
      const revalidated = replies.find((r) => r.xCache === "REVALIDATED")!;
      expect(revalidated.cacheStatus).toMatch(/fwd=stale; fwd-status=304; stored/);
      const after = await Promise.all(servers.map(stats));
      const delta = (field: "validations" | "notModified" | "errors") =>
        sum(after.map((s, i) => s.validated[field] - before[i]!.validated[field]));
      expect([delta("validations"), delta("notModified"), delta("errors")]).toEqual([1, 1, 0]);
    });

    it("negative control: with coalesce: false the same burst runs the handler more than once", async () => {
      const replies = await burst("/uncoalesced");

      expect(replies.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(await runs("uncoalesced")).toBeGreaterThan(1);
      expect(
        count(
          replies.map((r) => r.xCache),
          "MISS",
        ),
      ).toBeGreaterThan(1);
      expect(new Set(replies.map((r) => r.body)).size).toBeGreaterThan(1);
    });

    it("a purge by tag in one process empties another process's memory tier", async () => {
      const [a, b] = servers as [AppProcess, AppProcess];
      const cachePrefix = `${prefix}m:`;

      expect((await http(a.port, "/tagged")).xCache).toBe("MISS");
      expect(await runs("tagged")).toBe(1);
      // The response is sent before the entry is stored: wait until A stored it, then until B's
      // subscriber handled A's fill message (which drops the key from B's memory tier: B must
      // read the entry from Redis after that, or the late message would evict it again).
      await until("A to store /tagged", async () => (await stats(a)).tagged.stored === 1);
      const [entry, ...others] = await redis.zrange(tagIndex(cachePrefix, "t"), "0", "-1");
      expect(entry).toBeDefined();
      expect(others).toEqual([]);
      await until("B to receive A's fill message", async () =>
        (await stats(b)).received.fills.includes(entry!),
      );

      expect((await http(b.port, "/tagged")).xCache).toBe("HIT"); // from Redis, now in B's tier
      expect((await http(a.port, "/tagged")).xCache).toBe("HIT");
      expect((await stats(a)).tagged.memoryEntries).toBe(1);
      expect((await stats(b)).tagged.memoryEntries).toBe(1);
      // Delete the entry in Redis behind the caches' backs: hits now can only come from the
      // processes' memory tiers, and only the pub/sub message can clear B's.
      expect(await redis.unlink(entry!)).toBe(1);
      expect((await http(a.port, "/tagged")).xCache).toBe("HIT");
      expect((await http(b.port, "/tagged")).xCache).toBe("HIT");
      expect(await runs("tagged")).toBe(1);

      const purge = await http(a.port, "/purge", "POST", { tags: ["t"] });
      expect(purge.status).toBe(200);
      // Nothing left in Redis to delete (unlinked above); A's own tier is emptied synchronously.
      expect(JSON.parse(purge.body)).toEqual({ deleted: 0, memoryEntries: 0 });
      expect(await redis.exists(tagIndex(cachePrefix, "t"))).toBe(0);

      await until(
        "B to receive the purge message",
        async () => (await stats(b)).received.tags === 1,
      );
      expect((await stats(b)).tagged.memoryEntries).toBe(0);
      const after = await http(b.port, "/tagged");
      expect(after.xCache).toBe("MISS");
      expect(await runs("tagged")).toBe(2);
    });

    it("leaves no process behind", async () => {
      const pids = servers.map((s) => s.child.pid!);
      await stopAll();
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    });
  },
);
