/**
 * Starts a Sentinel-managed group for the tests and benchmarks (a master, its replica and three
 * sentinels) from the binaries on PATH, on free ports.
 */
import { randomBytes } from "node:crypto";
import { type RedisServer, requireBinary, run, startRedisServer, until } from "./redis-server.ts";

/** A Sentinel-managed group: one master, one replica and three sentinels. */
export interface RedisSentinelGroup {
  /** The master group's name (unique per group, see `startRedisSentinel()`). */
  readonly name: string;
  /** The sentinels' addresses. */
  readonly sentinels: { host: string; port: number }[];
  /** The two data servers (the first is the master at start). */
  readonly servers: RedisServer[];
  /** The port of the master the sentinels report now. */
  masterPort(): Promise<number>;
  /** Resolves once the sentinels report a master other than `port` and it accepts writes. */
  waitForNewMaster(port: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts a master, a replica of it and three sentinels (quorum 2, down after `downAfterMs`,
 * 1 s by default), and waits
 * until the replica is in sync and every sentinel knows the replica and the other sentinels.
 *
 * The group's name is unique: sentinels of another group still running (a parallel test file,
 * an interrupted run) that watch a port this group reuses would otherwise take this group's
 * sentinels over by gossip, a master of the same name with a newer epoch, and point them (and
 * the client) at a node of their choosing: seen to report a replica as the master for 18 s.
 */
export async function startRedisSentinel(
  options: { downAfterMs?: number } = {},
): Promise<RedisSentinelGroup> {
  const name = `erk-${randomBytes(4).toString("hex")}`;
  const cli = await requireBinary("redis-cli");
  const master = await startRedisServer();
  const replica = await startRedisServer(["--replicaof", "127.0.0.1", String(master.port)]);
  const servers = [master, replica];
  const sentinelServers: RedisServer[] = [];
  const query = async (port: number, ...args: string[]) =>
    (await run(cli, ["-p", String(port), ...args])).stdout;
  try {
    for (let i = 0; i < 3; i++) {
      sentinelServers.push(
        await startRedisServer(["--sentinel"], {
          file: "sentinel.conf",
          text: [
            "bind 127.0.0.1",
            `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
            `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${name} 4000`,
            `sentinel parallel-syncs ${name} 1`,
            "",
          ].join("\n"),
          readyText: "+monitor master",
        }),
      );
    }
    await until(20_000, "the replica to sync and the sentinels to meet", async () => {
      if (!(await query(replica.port, "info", "replication")).includes("master_link_status:up")) {
        return false;
      }
      for (const s of sentinelServers) {
        const replicas = await query(s.port, "sentinel", "replicas", name);
        const others = await query(s.port, "sentinel", "sentinels", name);
        if (!replicas.includes(String(replica.port))) return false;
        if ((others.match(/^runid$/gm) ?? []).length < 2) return false;
      }
      return true;
    });
  } catch (err) {
    await Promise.all([...servers, ...sentinelServers].map((s) => s.stop()));
    throw err;
  }
  const masterPort = async () => {
    const reply = await query(
      sentinelServers[0]!.port,
      "sentinel",
      "get-master-addr-by-name",
      name,
    );
    return Number(reply.trim().split("\n")[1]);
  };
  return {
    name,
    sentinels: sentinelServers.map((s) => ({ host: "127.0.0.1", port: s.port })),
    servers,
    masterPort,
    async waitForNewMaster(port, timeoutMs = 30_000) {
      let found = port;
      await until(timeoutMs, `a master other than ${port}`, async () => {
        const ports = await Promise.all(
          sentinelServers.map(async (s) => {
            const reply = await query(s.port, "sentinel", "get-master-addr-by-name", name);
            return Number(reply.trim().split("\n")[1]);
          }),
        );
        found = ports[0]!;
        if (found === port || ports.some((p) => p !== found)) return false;
        return (await query(found, "info", "replication")).includes("role:master");
      });
      return found;
    },
    async stop() {
      await Promise.all([...sentinelServers, ...servers].map((s) => s.stop()));
    },
  };
}
