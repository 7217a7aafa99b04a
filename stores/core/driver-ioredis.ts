/**
 * The `RedisDriver` of ioredis 5/6 and iovalkey (its fork, same API): a `Redis` (standalone,
 * or built with `sentinels`) or a `Cluster`. Recognised by shape: `defineCommand` and
 * `duplicate` functions.
 *
 * Scripts are registered with `defineCommand`, which sends EVALSHA and falls back to EVAL only
 * on NOSCRIPT, per connection and per Cluster node. Publishing on a Cluster goes through one
 * master so one publisher's messages keep their order. ioredis resubscribes a subscriber
 * connection after each reconnect, and a Sentinel-built one reconnects to the new master.
 */
import {
  type Arg,
  type NodeHandle,
  type RedisDriver,
  type ScriptSource,
  type Subscriber,
  type SubscriberEvents,
  scriptEnds,
} from "./driver.js";
import {
  type Corkable,
  type IoCluster,
  type IoConnection,
  type IoNode,
  type IoPipeline,
  type IoStreamed,
  nodeName,
  pingMasters,
  publisherOf,
  type ScriptMethod,
  seedAddress,
  watchClusterSubscriber,
} from "./driver-ioredis-nodes.js";
import { InvalidOptionError } from "./errors.js";
import { Pinger } from "./pinger.js";

class IoredisDriver implements RedisDriver {
  readonly family = "ioredis" as const;
  readonly topology;
  readonly isCluster: boolean;
  server: "redis" | "valkey" | undefined;
  readonly keyPrefix: string;
  readonly resendsUnanswered: boolean;
  /** Script command names (`<command>_<number of keys>`) registered on this client. */
  private readonly defined = new Set<string>();
  private readonly methods: Record<string, ScriptMethod>;
  /** Script commands waiting for auto-pipelines built before them to leave (see `define`). */
  private readonly gates = new Map<string, Promise<void>>();
  /** Whether this turn's writes are being held for one write at the end of it (see `batch`). */
  private corked = false;
  private readonly pinger: Pinger;

  constructor(readonly client: IoNode) {
    this.isCluster = (client as IoCluster).isCluster === true;
    const options = this.isCluster
      ? ((client as IoCluster).options.redisOptions ?? {})
      : client.options;
    this.topology = this.isCluster
      ? ("cluster" as const)
      : (client.options.sentinels?.length ?? 0) > 0
        ? ("sentinel" as const)
        : ("standalone" as const);
    this.keyPrefix = (this.isCluster ? client.options.keyPrefix : options.keyPrefix) ?? "";
    this.resendsUnanswered = options.autoResendUnfulfilledCommands !== false;
    this.methods = client as unknown as Record<string, ScriptMethod>;
    const cluster = client as IoCluster;
    this.pinger = this.isCluster
      ? new Pinger(
          () => pingMasters(cluster),
          () => cluster.refreshSlotsCache?.(() => {}),
        )
      : new Pinger(async () => void (await client.call("PING")));
  }

  get address(): string {
    if (!this.isCluster) return nodeName(this.client);
    const names = (this.client as IoCluster).nodes("master").map(nodeName).sort();
    return names[0] ?? seedAddress(this.client as IoCluster);
  }

  get ready(): boolean {
    return this.client.status === "ready";
  }

  script(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    buffers = false,
  ): Promise<unknown> {
    // ioredis's own Script (defineCommand): EVAL the first time on each connection, EVALSHA
    // after, EVAL again on NOSCRIPT, so a Cluster node never costs a NOSCRIPT round trip.
    // Defined with its number of keys, so the first argument is a key: ioredis's Cluster
    // auto-pipelining groups commands by the slot of their first argument.
    const { command } = script;
    const name = `${command}_${keys.length}`;
    if (!this.defined.has(name)) this.define(name, script.lua, keys.length);
    const gate = this.gates.get(name);
    if (gate !== undefined) return gate.then(() => this.script(script, keys, args, buffers));
    const flat: Arg[] = [];
    for (const key of keys) flat.push(key);
    for (const arg of args) flat.push(arg);
    const method = this.methods[buffers ? `${name}Buffer` : name]!;
    if (!this.corked) this.batch();
    // ioredis 6 may speak RESP3 too: replies normalised; latency recorded in the same continuation.
    const { answered, failed } = scriptEnds(command, performance.now());
    return method.apply(this.client, flat).then(answered, failed);
  }

  /**
   * Registers a script command. With enableAutoPipelining, the auto-pipelines open at that
   * moment were built without it: a call added to one would find no method there, and the
   * pipeline's answer would then miss an entry (ioredis throws, uncaught, and the replies after
   * it go to the wrong callers). Until every one of those pipelines has left (one may wait for
   * an earlier one on its slot), every call of the new command waits.
   */
  private define(name: string, lua: string, numberOfKeys: number): void {
    this.client.defineCommand(name, { lua, numberOfKeys });
    this.defined.add(name);
    const open = (this.client as { _autoPipelines?: Map<unknown, unknown> })._autoPipelines;
    if (open === undefined || open.size === 0) return;
    const built = new Set(open.values());
    const gate = new Promise<void>((resolve) => {
      const check = () => {
        for (const pipeline of open.values())
          if (built.has(pipeline)) return void setImmediate(check);
        this.gates.delete(name);
        resolve();
      };
      setImmediate(check);
    });
    this.gates.set(name, gate);
  }

  /**
   * Holds this connection's writes (every Cluster node's) until the end of the event-loop turn,
   * so the commands of all the requests the turn served leave in one write system call, not one
   * each: node-redis does the same (its writes wait for `setImmediate`), ioredis writes at once.
   * Measured on the shared harness: one write saved per request under load.
   */
  private batch(): void {
    const streams: Corkable[] = [];
    const nodes = this.isCluster ? (this.client as IoCluster).nodes("all") : [this.client];
    for (const node of nodes) {
      const stream = (node as unknown as { stream?: Corkable }).stream;
      if (stream?.writable === true) {
        stream.cork();
        streams.push(stream);
      }
    }
    if (streams.length === 0) return;
    this.corked = true;
    setImmediate(() => {
      this.corked = false;
      for (const stream of streams) {
        try {
          stream.uncork();
        } catch {
          // a destroyed socket: ioredis fails its commands through its own close handling
        }
      }
    });
  }

  command(name: string, keys: readonly string[], args: readonly Arg[] = []): Promise<unknown> {
    if (!this.corked) this.batch();
    // Lower case: iovalkey applies keyPrefix only to command names it knows in lower case.
    return this.client.call(name.toLowerCase(), ...keys, ...args);
  }

  async scriptAcknowledged(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    count: number,
    timeoutMs: number,
  ): Promise<[unknown, number]> {
    // Raw EVALSHA/EVAL in a pipeline, not the defined command: that one sends itself again
    // after NOSCRIPT outside the pipeline, behind the WAIT, which would then not cover it.
    const send = async (evalLua: boolean) => {
      const pipeline = (this.client as unknown as { pipeline(): IoPipeline }).pipeline();
      const head = evalLua ? ["eval", script.lua] : ["evalsha", script.sha];
      pipeline.call(...head, keys.length, ...keys, ...args);
      pipeline.call("wait", count, timeoutMs);
      if (!this.corked) this.batch();
      const results = await pipeline.exec();
      const [scriptError, reply] = results[0] ?? [new Error("no reply to the script"), null];
      const [waitError, acks] = results[1] ?? [new Error("no reply to WAIT"), 0];
      if (scriptError !== null) throw scriptError;
      if (waitError !== null) throw waitError;
      return [reply, Number(acks)] as [unknown, number];
    };
    const { answered, failed } = scriptEnds(script.command, performance.now());
    try {
      const [reply, acks] = await send(false).catch((err: Error) => {
        if (!String(err?.message).startsWith("NOSCRIPT")) throw err;
        return send(true);
      });
      return [answered(reply), acks];
    } catch (err) {
      // A redirect is an error here (the pipeline holds a write): learn the new slot owners.
      if (this.isCluster && /^(MOVED|ASK|CLUSTERDOWN)/.test(String((err as Error)?.message))) {
        (this.client as unknown as { refreshSlotsCache?(): void }).refreshSlotsCache?.();
      }
      return failed(err);
    }
  }

  /**
   * After a Sentinel failover the main connection finds the new master first (on
   * +switch-master or READONLY); a connection `duplicate()`d from it follows only when it
   * fails. Make `connection` reconnect (asking the sentinels) whenever the main one is ready
   * somewhere else.
   */
  private follow(connection: IoConnection): void {
    const moved = () => {
      const where = (c: unknown) => {
        const s = (c as IoStreamed).stream;
        return s?.remotePort === undefined ? undefined : `${s.remoteAddress}:${s.remotePort}`;
      };
      const here = where(connection);
      const there = where(this.client);
      if (here !== undefined && there !== undefined && here !== there) connection.disconnect(true);
    };
    this.client.on("ready", moved);
    connection.on("end", () => this.client.off("ready", moved));
  }

  duplicate(): { driver: RedisDriver; close(): void } {
    const copy = this.client.duplicate() as unknown as IoNode & IoConnection;
    copy.on("error", () => {}); // failures reach the callers as rejected commands
    // Writes on the old master would wait for replicas it no longer has until it is demoted.
    if (this.topology === "sentinel") this.follow(copy);
    return { driver: new IoredisDriver(copy), close: () => copy.disconnect() };
  }

  publish(channel: string, payload: string): Promise<number> {
    if (!this.isCluster) return this.client.publish(channel, payload);
    // A Cluster client sends a command without keys to a random node, and messages that
    // entered the bus at different nodes can overtake each other: publish on one master.
    // A master whose connection has ended: the Cluster client's own routing (and retries).
    const node = publisherOf(this.client as IoCluster);
    return node === undefined || node.status === "end" || node.status === "close"
      ? this.client.publish(channel, payload)
      : node.publish(channel, payload);
  }

  subscriber(events: SubscriberEvents): Subscriber {
    const connection = this.client.duplicate();
    connection.on("message", (channel: string, payload: string) =>
      events.message(channel, payload),
    );
    connection.on("pmessage", (pattern: string, channel: string, payload: string) =>
      events.message(channel, payload, pattern),
    );
    connection.on("error", (err: Error) => events.error(err));
    let readyOnce = false;
    connection.on("ready", () => {
      events.ready(readyOnce);
      readyOnce = true;
    });
    if (this.isCluster) watchClusterSubscriber(connection, events);
    // The subscriber sends no writes: without this it would stay on the old master until
    // Sentinel demotes it, seconds later, missing every message.
    if (this.topology === "sentinel") this.follow(connection);
    return {
      subscribe: async (channel) => void (await connection.subscribe(channel)),
      psubscribe: async (pattern) => void (await connection.psubscribe(pattern)),
      unsubscribe: async (channel) => void (await connection.unsubscribe(channel)),
      punsubscribe: async (pattern) => void (await connection.punsubscribe(pattern)),
      close: () => connection.disconnect(),
    };
  }

  async masters(): Promise<NodeHandle[]> {
    const nodes = this.isCluster ? (this.client as IoCluster).nodes("master") : [this.client];
    return nodes.map((node) => ({
      name: nodeName(node),
      command: (args: readonly Arg[]) => node.call(...args),
    }));
  }

  ping(): Promise<void> {
    return this.pinger.ping();
  }

  async sentinelMaster(): Promise<string | null> {
    if (this.topology !== "sentinel") return null;
    // The connection's own options hold the address it resolved through Sentinel.
    const info = String(await this.client.call("INFO", "server"));
    const port = /^tcp_port:(\d+)/m.exec(info)?.[1];
    const stream = (this.client as unknown as { stream?: { remoteAddress?: string } }).stream;
    return port === undefined ? null : `${stream?.remoteAddress ?? "?"}:${port}`;
  }

  on(event: "ready" | "end" | "error", listener: (err: Error) => void): () => void {
    this.client.on(event, listener);
    return () => void this.client.off(event, listener);
  }
}

/** The driver of an ioredis or iovalkey client, or undefined for another shape. */
export function ioredisDriver(client: object): RedisDriver | undefined {
  const c = client as Partial<IoNode>;
  if (typeof c.defineCommand !== "function" || typeof c.duplicate !== "function") return undefined;
  if (c.status === "end") {
    throw new InvalidOptionError(
      "the ioredis client was closed (status end): pass an open client",
      "redis",
    );
  }
  return new IoredisDriver(client as IoNode);
}
