/**
 * The chaos suite's topologies and how each fault is injected into them: a Cluster of 3
 * masters with one replica each, a Sentinel group (1 master, 1 replica, 3 sentinels), a
 * standalone server behind a TCP proxy, and one with `appendonly yes`. Each comes with the
 * client the app uses, built by `createRedisClient()`.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { createRedisClient, type RedisClient } from "../../index.js";
import type { Fault } from "./chaos.ts";
import { type RedisSentinelGroup, startRedisSentinel } from "./redis-sentinel.ts";
import {
  type RedisCluster,
  type RedisServer,
  startRedisCluster,
  startRedisServer,
  until,
} from "./redis-server.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

const run = promisify(execFile);
const cli = (port: number, ...args: string[]) =>
  run("redis-cli", ["-p", String(port), ...args]).then((r) => r.stdout);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A topology the faults run against, with the client the app uses. */
export interface Topology {
  redis: RedisClient;
  /**
   * Injects `fault`; resolves once it is injected (the freeze: once thawed) with the moment
   * (`performance.now()`) the fault began.
   */
  inject(fault: Fault): Promise<number>;
  /** Brings the topology back to full strength (restart, resync). */
  restore(): Promise<void>;
  /** Where `keys` are now, per node, with each node's role (for diagnostics). */
  locate?(keys: string[]): Promise<string>;
  /** Starts logging each node's role changes every 100 ms; returns the stopper. */
  watchRoles?(log: (line: string) => void): () => void;
  stop(): Promise<void>;
}

/**
 * Starts the topology `fault` needs, with a client made by `createRedisClient()`; Sentinel's
 * `down-after-milliseconds` is `sentinelDownAfterMs` (1000 by default).
 */
export async function startTopology(
  fault: Fault,
  client: "ioredis" | "node-redis",
  options: { sentinelDownAfterMs?: number } = {},
): Promise<Topology> {
  const kind = fault.split("-")[0];
  if (kind === "cluster") return clusterTopology(await startRedisCluster(3, 1), client);
  if (kind === "sentinel") {
    const group = await startRedisSentinel({ downAfterMs: options.sentinelDownAfterMs });
    return sentinelTopology(group, client);
  }
  if (kind === "proxy") return proxyTopology(client);
  return aofTopology(client);
}

const clientTimeoutMs = 500;

/** The app's client on `target` (a URL, Cluster nodes or a Sentinel group), quiet. */
const chaosClient = (client: "ioredis" | "node-redis", target: object): RedisClient =>
  createRedisClient({
    client,
    ...target,
    timeoutMs: clientTimeoutMs,
    logger: { info() {}, warn() {}, error() {} },
  });

function clusterTopology(cluster: RedisCluster, client: "ioredis" | "node-redis"): Topology {
  const redis = chaosClient(client, { cluster: { nodes: cluster.nodes } });
  // A killed node is restarted (as a supervisor would) once its replica took over: it comes
  // back as that replica's replica, so acknowledged writes have a replica again.
  let restarted: Promise<void> = Promise.resolve();
  const roles = async () =>
    Promise.all(
      cluster.servers.map(async (server) => {
        try {
          const info = await cli(server.port, "info", "replication");
          return { server, master: info.includes("role:master"), info };
        } catch {
          return { server, master: false, info: "" };
        }
      }),
    );
  /** A master that has a replica in sync, and that replica. */
  const pair = async () => {
    const all = await roles();
    for (const m of all.filter((r) => r.master && r.info.includes("connected_slaves:1"))) {
      const replica = all.find(
        (r) =>
          r.info.includes(`master_port:${m.server.port}`) &&
          r.info.includes("master_link_status:up"),
      );
      if (replica !== undefined) return { master: m.server, replica: replica.server };
    }
    throw new Error("no master with a replica in sync");
  };
  return {
    redis,
    async inject(fault) {
      const { master, replica } = await pair();
      const began = performance.now();
      if (fault === "cluster-sigkill" || fault === "cluster-lagkill") {
        if (fault === "cluster-lagkill") await lag(master, replica);
        await master.signal("SIGKILL");
        await replica.signal("SIGCONT");
        restarted = until(30_000, "the replica promoted", async () =>
          (await cli(replica.port, "info", "replication")).includes("role:master"),
        ).then(() => master.start());
        restarted.catch(() => {}); // awaited by restore()
      } else if (fault === "cluster-failover") {
        await cli(replica.port, "cluster", "failover");
      } else {
        await freeze(master);
      }
      return began;
    },
    watchRoles: (log) => watchRoles(cluster.servers, log),
    async restore() {
      await restarted;
      await until(30_000, "the Cluster whole again", async () => {
        const all = await roles();
        const masters = all.filter((r) => r.master);
        if (masters.length !== 3) return false;
        if (!all.every((r) => r.master || r.info.includes("master_link_status:up"))) return false;
        const states = await Promise.all(
          cluster.servers.map((s) => cli(s.port, "cluster", "info")),
        );
        return states.every((s) => s.includes("cluster_state:ok"));
      });
    },
    stop: () => cluster.stop(),
  };
}

function sentinelTopology(group: RedisSentinelGroup, client: "ioredis" | "node-redis"): Topology {
  const redis = chaosClient(client, { sentinel: { name: group.name, nodes: group.sentinels } });
  let restarted: Promise<void> = Promise.resolve();
  return {
    redis,
    async inject(fault) {
      const port = await group.masterPort();
      const master = group.servers.find((s) => s.port === port)!;
      const began = performance.now();
      if (fault === "sentinel-sigkill" || fault === "sentinel-lagkill") {
        const replica = group.servers.find((s) => s.port !== port)!;
        if (fault === "sentinel-lagkill") await lag(master, replica);
        await master.signal("SIGKILL");
        await replica.signal("SIGCONT");
        // Restarted once Sentinel promoted the replica, and made its replica (as Sentinel
        // would at its next look, up to 10 s later). Not promotable until it is in sync
        // (replica-priority 0, restored by restore()): it comes back with its stale dump.rdb,
        // and a sentinel that wrongly judges the new master down right after the switch (seen
        // in 5 of 64 rounds) would otherwise promote it, stale data and all.
        restarted = group.waitForNewMaster(port).then(async (now) => {
          await master.start();
          await cli(master.port, "config", "set", "replica-priority", "0");
          await cli(master.port, "replicaof", "127.0.0.1", String(now));
        });
        restarted.catch(() => {}); // awaited by restore()
      } else if (fault === "sentinel-failover") {
        await cli(group.sentinels[0]!.port, "sentinel", "failover", group.name);
      } else {
        await freeze(master);
      }
      return began;
    },
    async restore() {
      await restarted;
      await until(30_000, "the replica in sync", async () => {
        const port = await group.masterPort();
        const info = await cli(port, "info", "replication");
        if (!info.includes("role:master") || !info.includes("connected_slaves:1")) return false;
        const other = group.servers.find((s) => s.port !== port)!;
        const theirs = await cli(other.port, "info", "replication");
        return theirs.includes(`master_port:${port}`) && theirs.includes("master_link_status:up");
      });
      // In sync: promotable again.
      for (const server of group.servers) {
        await cli(server.port, "config", "set", "replica-priority", "100");
      }
    },
    async locate(keys) {
      const lines = [`sentinel says master ${await group.masterPort()}`];
      for (const s of group.servers) {
        const info = await cli(s.port, "info", "replication").catch((e) => String(e));
        const role = /role:(\w+)/.exec(info)?.[1];
        const link = /master_link_status:(\w+)/.exec(info)?.[1] ?? "";
        const of = /master_port:(\d+)/.exec(info)?.[1] ?? "";
        const found = await Promise.all(keys.map((k) => cli(s.port, "exists", k).catch(() => "?")));
        const there = found.filter((f) => f.trim() === "1").length;
        const dbsize = (await cli(s.port, "dbsize").catch(() => "?")).trim();
        lines.push(
          `${s.port} ${role}${of && ` of ${of} ${link}`} dbsize ${dbsize}: ${there}/${keys.length} lost keys there`,
        );
      }
      return lines.join("; ");
    },
    watchRoles(log) {
      // And what the sentinels decide: a second failover in a round (a new master judged down
      // on a loaded machine) would promote a replica still syncing, with its stale data.
      const stopRoles = watchRoles(group.servers, log, redis);
      const started = performance.now();
      const events = ["+sdown", "-sdown", "+odown", "+try-failover", "+switch-master"];
      const watchers = group.sentinels.map((sentinel) => {
        const watcher = new Redis({ ...sentinel, retryStrategy: () => 100 });
        watcher.on("error", () => {});
        watcher.subscribe(...events).catch(() => {});
        watcher.on("message", (channel: string, message: string) =>
          log(
            `+${Math.round(performance.now() - started)} ms sentinel ${sentinel.port}: ${channel} ${message}`,
          ),
        );
        return watcher;
      });
      return () => {
        stopRoles();
        for (const watcher of watchers) watcher.disconnect();
      };
    },
    stop: () => group.stop(),
  };
}

async function proxyTopology(client: "ioredis" | "node-redis"): Promise<Topology> {
  const server = await startRedisServer();
  const proxy: TcpProxy = await startTcpProxy({ host: "127.0.0.1", port: server.port });
  const redis = chaosClient(client, { url: proxy.url });
  return {
    redis,
    async inject(fault) {
      const began = performance.now();
      if (fault === "proxy-latency") {
        proxy.setLatency(200);
        await sleep(3000);
        proxy.setLatency(0);
      } else if (fault === "proxy-stall") {
        proxy.stall();
        await sleep(3000);
        proxy.resume();
      } else {
        proxy.resetAll();
      }
      return began;
    },
    async restore() {},
    async stop() {
      await proxy.close();
      await server.stop();
    },
  };
}

async function aofTopology(client: "ioredis" | "node-redis"): Promise<Topology> {
  const server = await startRedisServer(["--appendonly", "yes", "--appendfsync", "everysec"]);
  const redis = chaosClient(client, { url: server.url });
  return {
    redis,
    async inject() {
      const began = performance.now();
      await server.signal("SIGKILL");
      await server.start();
      return began;
    },
    async restore() {},
    stop: () => server.stop(),
  };
}

/**
 * Cuts `replica` off `master` for 300 ms, as a replication lag would: the replica is stopped
 * (SIGSTOP, so it cannot reconnect) and the master drops its link (CLIENT KILL TYPE replica),
 * so what the master takes meanwhile stays in the master alone. A stopped replica alone would
 * not do: the kernel keeps receiving the stream for it. The caller kills the master next, then
 * continues the replica.
 */
async function lag(master: RedisServer, replica: RedisServer): Promise<void> {
  await replica.signal("SIGSTOP");
  await cli(master.port, "client", "kill", "type", "replica");
  await sleep(300);
}

/**
 * Logs every role change of `servers` (and the port `client` is connected to, for a
 * standalone or Sentinel ioredis client), polled every 100 ms over one connection per server
 * (not redis-cli: a process per look would load the machine under test); returns the stopper.
 */
function watchRoles(
  servers: RedisServer[],
  log: (line: string) => void,
  client?: RedisClient,
): () => void {
  const last = new Map<number, string>();
  const started = performance.now();
  const say = (what: string) => log(`+${Math.round(performance.now() - started)} ms ${what}`);
  const conns = servers.map(
    (s) =>
      new Redis({
        port: s.port,
        host: "127.0.0.1",
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => 50,
        lazyConnect: false,
      }),
  );
  for (const c of conns) c.on("error", () => {});
  const look = async (s: RedisServer, c: Redis) => {
    const info = await c.info("replication").catch(() => "down");
    const role = /role:(\w+)/.exec(info)?.[1] ?? "down";
    const of = /master_port:(\d+)/.exec(info)?.[1] ?? "";
    const link = /master_link_status:(\w+)/.exec(info)?.[1] ?? "";
    const now = `${role}${of && ` of ${of} ${link}`}`;
    if (last.get(s.port) === now) return;
    last.set(s.port, now);
    say(`${s.port}: ${now} dbsize ${await c.dbsize().catch(() => "?")}`);
  };
  const timer = setInterval(() => {
    const at = (client as { stream?: { remotePort?: number } } | undefined)?.stream?.remotePort;
    if (client !== undefined && last.get(0) !== String(at)) {
      last.set(0, String(at));
      say(`client at ${at}`);
    }
    servers.forEach((s, i) => void look(s, conns[i]!));
  }, 100);
  return () => {
    clearInterval(timer);
    for (const c of conns) c.disconnect();
  };
}

/** Freezes `server` for 3 s (SIGSTOP, then SIGCONT). */
async function freeze(server: RedisServer): Promise<void> {
  await server.signal("SIGSTOP");
  await sleep(3000);
  await server.signal("SIGCONT");
}
