/**
 * Pub/sub on a Redis Cluster, node-redis against ioredis: `npx tsx bench/pubsub-cluster.ts`
 * (about a minute). See bench/README.md.
 *
 * Starts its own 3-master Redis Cluster (`startRedisCluster()` of the test harness), then, for
 * each client library (node-redis `createCluster()`, ioredis `Cluster`) and each way of
 * publishing:
 *
 * - `PUBLISH`: classic PUBLISH, every message sent through one fixed master (the first by
 *   address, as this library's drivers do), received by a subscriber on the cluster
 *   (node-redis `subscribe`, ioredis `subscribe`: one connection to some node);
 * - `SPUBLISH`: sharded pub/sub, each message routed to its channel's master (node-redis
 *   `sPublish`, ioredis `spublish`), received with SSUBSCRIBE (node-redis `sSubscribe`, ioredis
 *   `ssubscribe` on a Cluster with `shardedSubscribers: true`);
 *
 * sends `PUBSUB_MESSAGES` (20,000) messages without awaiting each (all sent, then every reply
 * awaited), on 1 channel and then round-robin over 100 channels (spread over the slots), and
 * measures: messages/s delivered end to end (first publish to last message received), whether
 * every channel's messages all arrived, once and in order, and the publisher's CPU µs per message
 * (`process.cpuUsage()` of this process from the first publish to the last reply), with the
 * Redis servers' CPU per message (INFO cpu of every node, from the first publish to the last
 * message received: a classic PUBLISH is forwarded to every node of the cluster). The subscriber
 * is a child process (this file with `--subscriber`), so its CPU is not the publisher's; both
 * stamp with `process.hrtime.bigint()` (CLOCK_MONOTONIC, one clock for every process).
 * `PUBSUB_ROUNDS` (3) rounds, the cases rotated by one slot per round; the table has medians.
 * The output is also written to bench/results/<timestamp>-pubsub-cluster.md.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Cluster, Redis } from "ioredis";
import { createCluster } from "redis";
import { startRedisCluster } from "../test/harness/redis-server.js";

const LIBRARIES = ["node-redis", "ioredis"] as const;
const MODES = ["PUBLISH", "SPUBLISH"] as const;
const CHANNEL_COUNTS = [1, 100] as const;
type Library = (typeof LIBRARIES)[number];
type Mode = (typeof MODES)[number];
type Node = { host: string; port: number };

/** One measured configuration, also the subscriber child's argument. */
interface Case {
  library: Library;
  mode: Mode;
  channels: string[];
  messages: number;
  nodes: Node[];
}

/** What the subscriber child reports. */
interface Received {
  received: number;
  /** Messages whose sequence number was not above the last one of their channel. */
  outOfOrder: number;
  /** Unique messages that arrived (received less repeats). */
  unique: number;
  lastAt: string;
  /** The child's CPU time from READY to its report, µs. */
  cpuUs: number;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MESSAGES = Number(process.env.PUBSUB_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.PUBSUB_ROUNDS ?? 3);
const WARMUP = 2_000;
const DELIVERY_TIMEOUT_MS = 60_000;
/** Every payload is its sequence number padded to this many bytes. */
const PAYLOAD_BYTES = 64;

const payload = (seq: number) => String(seq).padEnd(PAYLOAD_BYTES, ".");
const byAddress = (a: Node, b: Node) =>
  `${a.host}:${a.port}` < `${b.host}:${b.port}`
    ? -1
    : `${a.host}:${a.port}` > `${b.host}:${b.port}`
      ? 1
      : 0;

// ---------------------------------------------------------------------------------------------
// Clients.

/** A connected cluster client of `library`, with the `mode`'s publish, and its close. */
async function publisher(
  library: Library,
  mode: Mode,
  nodes: Node[],
): Promise<{ publish(channel: string, message: string): Promise<unknown>; close(): void }> {
  if (library === "node-redis") {
    const cluster = createCluster({
      rootNodes: nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })),
    });
    cluster.on("error", (err: Error) => console.error(`node-redis publisher: ${err.message}`));
    await cluster.connect();
    const close = () => void cluster.destroy();
    if (mode === "SPUBLISH") return { publish: (c, m) => cluster.sPublish(c, m), close };
    const master = [...cluster.masters].sort(byAddress)[0]!;
    const node = await cluster.nodeClient(master);
    return { publish: (c, m) => node.publish(c, m), close };
  }
  const cluster = new Cluster(nodes);
  cluster.on("error", (err: Error) => console.error(`ioredis publisher: ${err.message}`));
  await new Promise((resolve) => cluster.once("ready", resolve));
  const close = () => cluster.disconnect();
  if (mode === "SPUBLISH") return { publish: (c, m) => cluster.spublish(c, m), close };
  const node = cluster
    .nodes("master")
    .sort((a, b) => byAddress(a.options as Node, b.options as Node))[0]!;
  return { publish: (c, m) => node.publish(c, m), close };
}

/** Subscribes a new cluster client of the case's library to its channels; `onMessage` gets each message. */
async function subscribe(spec: Case, onMessage: (channel: string, message: string) => void) {
  const { library, mode, channels, nodes } = spec;
  if (library === "node-redis") {
    const cluster = createCluster({
      rootNodes: nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })),
    });
    cluster.on("error", (err: Error) => console.error(`node-redis subscriber: ${err.message}`));
    await cluster.connect();
    const listener = (message: string, channel: string) => onMessage(channel, message);
    if (mode === "PUBLISH") await cluster.subscribe(channels, listener);
    else for (const channel of channels) await cluster.sSubscribe(channel, listener);
    return;
  }
  const cluster = new Cluster(nodes, { shardedSubscribers: mode === "SPUBLISH" });
  cluster.on("error", (err: Error) => console.error(`ioredis subscriber: ${err.message}`));
  await new Promise((resolve) => cluster.once("ready", resolve));
  if (mode === "PUBLISH") {
    cluster.on("message", onMessage);
    await cluster.subscribe(...channels);
  } else {
    cluster.on("smessage", onMessage);
    for (const channel of channels) await cluster.ssubscribe(channel); // one slot per command
  }
}

// ---------------------------------------------------------------------------------------------
// The subscriber child: `--subscriber <case as JSON>`. Prints READY once subscribed, then one
// RESULT line when every message came, or when the parent writes a line (its timeout).

async function subscriberMain(spec: Case): Promise<void> {
  const last = new Map<string, number>();
  let received = 0;
  let outOfOrder = 0;
  let unique = 0;
  let lastAt = 0n;
  let cpuStart = process.cpuUsage();
  const report = () => {
    const cpu = process.cpuUsage(cpuStart);
    const result: Received = {
      received,
      outOfOrder,
      unique,
      lastAt: String(lastAt),
      cpuUs: cpu.user + cpu.system,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  };
  await subscribe(spec, (channel, message) => {
    lastAt = process.hrtime.bigint();
    received++;
    const seq = Number.parseInt(message, 10);
    const before = last.get(channel) ?? -1;
    if (seq > before) {
      unique++;
      last.set(channel, seq);
    } else {
      outOfOrder++;
    }
    if (unique === spec.messages) report();
  });
  createInterface({ input: process.stdin }).on("line", report);
  cpuStart = process.cpuUsage();
  process.stdout.write("READY\n");
}

/** Starts the subscriber child; resolves once it has subscribed. */
function startSubscriber(spec: Case): Promise<{ child: ChildProcess; result: Promise<Received> }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "--subscriber", JSON.stringify(spec)],
    { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] },
  );
  children.add(child);
  child.once("exit", () => children.delete(child));
  return new Promise((resolve, reject) => {
    let resolveResult: (r: Received) => void;
    const result = new Promise<Received>((r) => {
      resolveResult = r;
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (line === "READY") resolve({ child, result });
      else if (line.startsWith("RESULT ")) resolveResult(JSON.parse(line.slice(7)) as Received);
    });
    child.once("exit", (code) => reject(new Error(`subscriber exited with ${code} before READY`)));
  });
}

const children = new Set<ChildProcess>();

// ---------------------------------------------------------------------------------------------
// One measured run.

interface Run {
  round: number;
  library: Library;
  mode: Mode;
  channels: number;
  deliveredPerSec: number;
  ackedPerSec: number;
  publisherCpuUsPerMsg: number;
  subscriberCpuUsPerMsg: number;
  redisCpuUsPerMsg: number;
  received: number;
  missing: number;
  outOfOrder: number;
}

/** The Redis servers' CPU time so far (user + system, main and background threads), µs. */
async function redisCpuUs(admins: readonly Redis[]): Promise<number> {
  const infos = await Promise.all(admins.map((admin) => admin.info("cpu")));
  const field = (info: string, name: string) =>
    Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return infos.reduce(
    (sum, info) => sum + (field(info, "used_cpu_user") + field(info, "used_cpu_sys")) * 1e6,
    0,
  );
}

async function runOnce(spec: Case, round: number, admins: readonly Redis[]): Promise<Run> {
  const client = await publisher(spec.library, spec.mode, spec.nodes);
  try {
    const { child, result } = await startSubscriber(spec);
    try {
      // Warm-up on channels nobody listens to: connections to every master, JIT.
      const warm = Array.from({ length: WARMUP }, (_, i) => client.publish(`warm:${i % 100}`, "w"));
      await Promise.all(warm);

      const { channels, messages } = spec;
      const redisBefore = await redisCpuUs(admins);
      const cpuBefore = process.cpuUsage();
      const start = process.hrtime.bigint();
      const replies: Promise<unknown>[] = new Array(messages);
      for (let i = 0; i < messages; i++)
        replies[i] = client.publish(channels[i % channels.length]!, payload(i));
      await Promise.all(replies);
      const acked = process.hrtime.bigint();
      const cpu = process.cpuUsage(cpuBefore);

      const timer = setTimeout(() => child.stdin?.write("report\n"), DELIVERY_TIMEOUT_MS);
      const got = await result;
      clearTimeout(timer);
      const redisCpu = (await redisCpuUs(admins)) - redisBefore;
      const seconds = (at: bigint) => Number(at - start) / 1e9;
      return {
        round,
        library: spec.library,
        mode: spec.mode,
        channels: channels.length,
        deliveredPerSec: got.unique / seconds(BigInt(got.lastAt)),
        ackedPerSec: messages / seconds(acked),
        publisherCpuUsPerMsg: (cpu.user + cpu.system) / messages,
        subscriberCpuUsPerMsg: got.cpuUs / Math.max(1, got.received),
        redisCpuUsPerMsg: redisCpu / messages,
        received: got.received,
        missing: messages - got.unique,
        outOfOrder: got.outOfOrder,
      };
    } finally {
      child.kill("SIGKILL");
    }
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The report.

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

function table(runs: Run[]): string {
  const lines = [
    "| client | publish | channels | delivered msg/s | acked msg/s | complete and in order | publisher CPU µs/msg | subscriber CPU µs/msg | Redis CPU µs/msg (3 nodes) |",
    "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
  ];
  for (const channels of CHANNEL_COUNTS)
    for (const mode of MODES)
      for (const library of LIBRARIES) {
        const mine = runs.filter(
          (r) => r.library === library && r.mode === mode && r.channels === channels,
        );
        if (mine.length === 0) continue;
        const bad = mine.filter((r) => r.missing > 0 || r.outOfOrder > 0);
        const order =
          bad.length === 0
            ? `yes (${mine.length}/${mine.length} runs)`
            : `NO in ${bad.length}/${mine.length} runs (${bad.map((r) => `${r.missing} missing, ${r.outOfOrder} out of order`).join("; ")})`;
        lines.push(
          `| ${library} | ${mode} | ${channels} | ${int(median(mine.map((r) => r.deliveredPerSec)))} | ` +
            `${int(median(mine.map((r) => r.ackedPerSec)))} | ${order} | ` +
            `${median(mine.map((r) => r.publisherCpuUsPerMsg)).toFixed(2)} | ${median(mine.map((r) => r.subscriberCpuUsPerMsg)).toFixed(2)} | ` +
            `${median(mine.map((r) => r.redisCpuUsPerMsg)).toFixed(2)} |`,
        );
      }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const cluster = await startRedisCluster(3);
  const admins = cluster.nodes.map((n) => new Redis(n.port, n.host));
  const stop = async () => {
    for (const child of children) child.kill("SIGKILL");
    for (const admin of admins) admin.disconnect();
    await cluster.stop();
  };
  process.once("SIGINT", () => void stop().finally(() => process.exit(130)));
  const startedAt = new Date();
  const runs: Run[] = [];
  try {
    const cases: Case[] = CHANNEL_COUNTS.flatMap((count) =>
      MODES.flatMap((mode) =>
        LIBRARIES.map((library) => ({
          library,
          mode,
          channels: Array.from({ length: count }, (_, i) => `bench:chan:${i}`),
          messages: MESSAGES,
          nodes: cluster.nodes,
        })),
      ),
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const shift = (round - 1) % cases.length;
      for (const spec of [...cases.slice(shift), ...cases.slice(0, shift)]) {
        const run = await runOnce(spec, round, admins);
        runs.push(run);
        console.log(
          `[${round}/${ROUNDS}] ${run.library.padEnd(10)} ${run.mode.padEnd(8)} ${String(run.channels).padStart(3)} ch: ` +
            `${int(run.deliveredPerSec)} msg/s delivered, ${int(run.ackedPerSec)} acked, ` +
            `publisher ${run.publisherCpuUsPerMsg.toFixed(2)} µs/msg, Redis ${run.redisCpuUsPerMsg.toFixed(2)} µs/msg, ` +
            `${run.missing} missing, ${run.outOfOrder} out of order`,
        );
      }
    }
  } finally {
    await stop();
  }
  const intro =
    `${ROUNDS} round(s) of ${int(MESSAGES)} messages (${PAYLOAD_BYTES} bytes) per case, published without awaiting each, ` +
    `on a 3-master Redis Cluster on this machine (${availableParallelism()} × ${cpus()[0]?.model ?? "unknown"}, Node ${process.version}, no pinning). ` +
    "Medians over rounds. Delivered: unique messages / (last received − first publish); acked: messages / (last publish reply − first publish); " +
    "publisher CPU: this process's user + system CPU from the first publish to the last reply, per message; subscriber CPU: the subscriber process's, per message; " +
    "Redis CPU: the three redis-servers' (INFO cpu, every thread) from the first publish to the last message received, per message.";
  const text = `${intro}\n\n${table(runs)}\n`;
  console.log(`\n${text}`);
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = `${startedAt.toISOString().replace(/[:.]/g, "-")}-pubsub-cluster.md`;
  writeFileSync(
    join(dir, file),
    `# Pub/sub on a Redis Cluster ${startedAt.toISOString()}\n\n${text}\n## Raw runs\n\n\`\`\`json\n${JSON.stringify(runs, null, 2)}\n\`\`\`\n`,
  );
  console.log(`Wrote bench/results/${file}`);
}

const [flag, spec] = process.argv.slice(2);
const entry = flag === "--subscriber" ? subscriberMain(JSON.parse(spec ?? "{}") as Case) : main();
entry.then(
  () => {
    if (flag !== "--subscriber") process.exit(0);
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    for (const child of children) child.kill("SIGKILL");
    process.exit(1);
  },
);
