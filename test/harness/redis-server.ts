/**
 * Starts and stops real `redis-server` processes for the tests and benchmarks: a standalone
 * server or a small Cluster, on free ports, from the binary on PATH (a Sentinel group:
 * redis-sentinel.ts).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

/** Runs a binary; resolves with its output. */
export const run = promisify(execFile);

/** Thrown when a binary the tests need is not on PATH; its message is one line. */
export class MissingBinaryError extends Error {}

/** Resolves the path of `name` on PATH, or throws one clear line naming the missing binary. */
export async function requireBinary(
  name: "redis-server" | "redis-cli" | "chromium",
): Promise<string> {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new MissingBinaryError(
    name === "chromium"
      ? "chromium not found on PATH: install it (Debian: apt-get install chromium; .ci/run does) for the browser test"
      : `${name} not found on PATH: install it (Debian: apt-get install redis-server) or set REDIS_URL and REDIS_CLUSTER_NODES to existing servers`,
  );
}

/** A free TCP port on 127.0.0.1 (and, for Cluster nodes, its bus port + 10000 too). */
export async function freePort(withBus = false): Promise<number> {
  for (;;) {
    const port = await listenOnce(0);
    if (!withBus || port + 10000 > 65535) {
      if (!withBus) return port;
      continue;
    }
    try {
      await listenOnce(port + 10000);
      return port;
    } catch {
      // bus port taken: try another
    }
  }
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const chosen = typeof address === "object" && address !== null ? address.port : port;
      server.close(() => resolve(chosen));
    });
  });
}

/** A running (or stopped) `redis-server` owned by the test. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the process (SIGTERM, no save) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Sends `signal` (SIGKILL: dies at once; SIGSTOP/SIGCONT: freezes, thaws); resolves after a SIGKILL'd exit. */
  signal(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a standalone `redis-server` with persistence off and DEBUG allowed locally. A free port
 * can be taken by another process between the check and the bind (parallel test files): the
 * first start then tries another port, a few times.
 */
export async function startRedisServer(
  extraArgs: string[] = [],
  config?: { file: string; text: string; readyText: string },
): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnFreePort(extraArgs, config);
    } catch (err) {
      if (attempt >= 5 || !/Address already in use/.test(String((err as Error).message))) {
        throw err;
      }
    }
  }
}

async function startOnFreePort(
  extraArgs: string[],
  config: { file: string; text: string; readyText: string } | undefined,
): Promise<RedisServer> {
  const binary = await requireBinary("redis-server");
  const port = await freePort(extraArgs.includes("--cluster-enabled"));
  const dir = mkdtempSync(join(tmpdir(), `erk-redis-${port}-`));
  const tried = (process.env.CHAOS_REDIS_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  const configArgs: string[] = [];
  if (config !== undefined) {
    // Sentinel needs a configuration file it can rewrite.
    const file = join(dir, config.file);
    writeFileSync(file, `port ${port}\n${config.text}`);
    configArgs.push(file);
  }
  const args = [
    ...configArgs,
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    // DEBUG (for DEBUG SLEEP) is off by default from Redis 7; older servers reject the flag.
    ...((await majorVersion(binary)) >= 7 ? ["--enable-debug-command", "local"] : []),
    ...extraArgs,
    // Server settings a chaos run tries on every data node (bench/README.md, chaos knobs).
    ...(extraArgs.includes("--sentinel") ? [] : tried),
  ];
  let child: ChildProcess | undefined;
  const handle: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      if (child !== undefined) return;
      child = await spawnReady(binary, args, config?.readyText);
      child.once("exit", () => {
        child = undefined;
      });
    },
    async stop() {
      const running = child;
      if (running === undefined) return;
      const exited = new Promise((resolve) => running.once("exit", resolve));
      running.kill("SIGCONT"); // a frozen server could not act on SIGTERM
      running.kill("SIGTERM");
      await exited;
    },
    async signal(signal) {
      const running = child;
      if (running === undefined) return;
      const exited = new Promise((resolve) => running.once("exit", resolve));
      running.kill(signal);
      if (signal === "SIGKILL") await exited;
    },
  };
  await handle.start();
  return handle;
}

/** The major version of a redis-server binary (`redis-server --version`). */
async function majorVersion(binary: string): Promise<number> {
  const { stdout } = await run(binary, ["--version"]);
  return Number(/v=(\d+)/.exec(stdout)?.[1] ?? 0);
}

/** Spawns redis-server and resolves once it logs "Ready to accept connections". */
function spawnReady(
  binary: string,
  args: string[],
  readyText = "Ready to accept connections",
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(readyText)) {
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)));
  });
}

/** A local Redis Cluster of `masters` nodes, each with `replicas` replicas. */
export interface RedisCluster {
  readonly nodes: { host: string; port: number }[];
  readonly servers: RedisServer[];
  stop(): Promise<void>;
}

/** Starts `masters` cluster-enabled servers and joins them with `redis-cli --cluster create`. */
export async function startRedisCluster(masters = 3, replicas = 0): Promise<RedisCluster> {
  const cli = await requireBinary("redis-cli");
  const servers: RedisServer[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    servers.push(
      await startRedisServer([
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `nodes-${i}.conf`,
        "--cluster-node-timeout",
        // Short where replicas take over, so a failover takes a second or two.
        replicas > 0 ? "1000" : "2000",
      ]),
    );
  }
  const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
  await run(cli, [
    "--cluster",
    "create",
    ...addresses,
    "--cluster-replicas",
    String(replicas),
    "--cluster-yes",
  ]);
  const port = servers[0]!.port;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all(
      servers.map((s) => run(cli, ["-p", String(s.port), "cluster", "info"]).then((r) => r.stdout)),
    );
    const synced = await Promise.all(
      servers.map((s) =>
        run(cli, ["-p", String(s.port), "info", "replication"]).then((r) =>
          r.stdout.includes("master_link_status:up"),
        ),
      ),
    );
    if (
      states.every((info) => info.includes("cluster_state:ok")) &&
      synced.filter(Boolean).length === masters * replicas
    ) {
      break;
    }
    if (Date.now() > deadline)
      throw new Error(`cluster on port ${port} did not reach cluster_state:ok`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // no event tells when gossip converges
  }
  return {
    nodes: servers.map((s) => ({ host: "127.0.0.1", port: s.port })),
    servers,
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** Polls `check` until it is true (no event tells when gossip or an election is done). */
export async function until(timeoutMs: number, what: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // a server not answering yet: try again
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
