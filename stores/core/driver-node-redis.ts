/**
 * The `RedisDriver` of node-redis 5/6 (the `redis` package): `createClient()`,
 * `createCluster()` or `createSentinel()`, recognised by shape (`sendCommand` and `isOpen`;
 * a Cluster also has `nodeClient`, a Sentinel `getMasterNode`). The client must have been
 * `connect()`ed: node-redis rejects every command of a client that is not open.
 *
 * Scripts go out as EVALSHA with the whole command in one `sendCommand`, and as EVAL only when
 * the server answers NOSCRIPT; a Cluster routes both by the first key, so the fallback happens
 * per node. Replies are made protocol-independent (node-redis 6 speaks RESP3 by default).
 * node-redis does not apply `keyPrefix` to a raw `sendCommand`, so this driver adds it to keys.
 * On a Cluster, every PUBLISH goes through one master, so messages keep their order.
 */
import {
  type Arg,
  type NodeHandle,
  type RedisDriver,
  type ScriptSource,
  type Subscriber,
  type SubscriberEvents,
  scriptEnds,
  type Topology,
} from "./driver.js";
import {
  AS_BUFFERS,
  AS_STRINGS,
  addressOf,
  isNoScript,
  isReady,
  type Listener,
  type NodeRedisLike,
  type NodeRedisMulti,
  pingMasters,
  type Raw,
  raw,
  rediscover,
  type Send,
  waitingForFirstConnect,
} from "./driver-node-redis-shape.js";
import { InvalidOptionError } from "./errors.js";
import { Pinger } from "./pinger.js";

class NodeRedisDriver implements RedisDriver {
  readonly family = "node-redis" as const;
  readonly topology: Topology;
  readonly isCluster: boolean;
  server: "redis" | "valkey" | undefined;
  readonly keyPrefix: string;
  /** node-redis never resends a command whose reply a disconnect lost. */
  readonly resendsUnanswered = false;
  private send: Send;
  private readonly pinger: Pinger;

  constructor(readonly client: NodeRedisLike) {
    const c = client;
    this.topology =
      typeof c.nodeClient === "function"
        ? "cluster"
        : typeof c.getMasterNode === "function"
          ? "sentinel"
          : "standalone";
    this.isCluster = this.topology === "cluster";
    const prefix = c._keyPrefix ?? c.options?.keyPrefix;
    this.keyPrefix = prefix === undefined ? "" : String(prefix);
    // One closure per topology, chosen once: the three sendCommand signatures differ.
    let send: typeof this.send;
    if (this.topology === "cluster") {
      send = (key, args, buffers) =>
        c.sendCommand(key, false, args, buffers ? AS_BUFFERS : AS_STRINGS);
    } else if (this.topology === "sentinel") {
      send = (_key, args, buffers) => c.sendCommand(false, args, buffers ? AS_BUFFERS : AS_STRINGS);
    } else {
      send = (_key, args, buffers) => c.sendCommand(args, buffers ? AS_BUFFERS : AS_STRINGS);
    }
    // A Cluster or Sentinel refuses commands until its first connection is made: until then
    // they wait for it (see `waitingForFirstConnect`); afterwards they go straight out.
    this.send =
      this.topology !== "standalone" && !isReady(c)
        ? waitingForFirstConnect(c, this.topology, send, () => {
            this.send = send;
          })
        : send;
    this.pinger = this.isCluster
      ? new Pinger(
          () => pingMasters(c),
          () => rediscover(c),
        )
      : new Pinger(async () => void (await this.send(undefined, ["PING"], false)));
  }

  get address(): string {
    return addressOf(this.client, this.topology);
  }

  get ready(): boolean {
    return isReady(this.client);
  }

  script(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    buffers = false,
  ): Promise<unknown> {
    const argv: Raw[] = ["EVALSHA", script.sha, String(keys.length)];
    const prefix = this.keyPrefix;
    for (const key of keys) argv.push(prefix + key);
    for (const arg of args) argv.push(typeof arg === "number" ? String(arg) : arg);
    const first = keys.length > 0 ? (argv[3] as string) : undefined;
    const { answered, failed } = scriptEnds(script.command, performance.now());
    return this.send(first, argv, buffers).then(answered, (err: unknown) => {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) return failed(err);
      argv[0] = "EVAL";
      argv[1] = script.lua;
      return this.send(first, argv, buffers).then(answered, failed);
    });
  }

  command(name: string, keys: readonly string[], args: readonly Arg[] = []): Promise<unknown> {
    const argv: Raw[] = [name];
    for (const key of keys) argv.push(this.keyPrefix + key);
    for (const arg of args) argv.push(typeof arg === "number" ? String(arg) : arg);
    return this.send(keys.length > 0 ? (argv[1] as string) : undefined, argv, false);
  }

  async scriptAcknowledged(
    script: ScriptSource,
    keys: readonly string[],
    args: readonly Arg[],
    count: number,
    timeoutMs: number,
  ): Promise<[unknown, number]> {
    const argv: Raw[] = ["EVALSHA", script.sha, String(keys.length)];
    for (const key of keys) argv.push(this.keyPrefix + key);
    for (const arg of args) argv.push(typeof arg === "number" ? String(arg) : arg);
    const first = argv[3] as string | undefined;
    const wait = ["WAIT", String(count), String(timeoutMs)];
    // Replies as the kit expects them, whatever type mapping the client was given.
    type Multi = { multi(): NodeRedisMulti };
    const c = (this.client as NodeRedisLike & { withTypeMapping?(m: object): Multi })
      .withTypeMapping;
    const client = (
      c === undefined ? this.client : c.call(this.client, AS_STRINGS.typeMapping)
    ) as Multi;
    // One pipeline (not a transaction) on one connection: on a Cluster the master of the key,
    // routed by `addCommand`'s first key (already prefixed: `multi(key)` would prefix it again).
    const send = async (): Promise<[unknown, number]> => {
      // A Cluster or Sentinel client refuses a pipeline until its first connection is made:
      // wait for it as every other command does (bounded, see the constructor).
      if (!isReady(this.client)) await this.send(first, ["PING"], false);
      const multi = client.multi();
      if (this.topology === "cluster") {
        multi.addCommand(first, false, argv).addCommand(first, false, wait);
      } else if (this.topology === "sentinel") {
        multi.addCommand(false, argv).addCommand(false, wait);
      } else {
        multi.addCommand(argv).addCommand(wait);
      }
      const [reply, acks] = await multi.execAsPipeline();
      return [reply, Number(acks)];
    };
    const { answered, failed } = scriptEnds(script.command, performance.now());
    try {
      const [reply, acks] = await send().catch((err: unknown) => {
        if (!isNoScript(err)) throw err;
        argv[0] = "EVAL";
        argv[1] = script.lua;
        return send();
      });
      return [answered(reply), acks];
    } catch (err) {
      return failed(err);
    }
  }

  duplicate(): { driver: RedisDriver; close(): void } {
    const copy = this.client.duplicate();
    copy.on("error", () => {}); // failures reach the callers as rejected commands
    copy.connect().catch(() => {});
    return {
      driver: new NodeRedisDriver(copy),
      close: () => {
        if (!copy.isOpen) return;
        if (typeof copy.destroy === "function") copy.destroy();
        else copy.disconnect?.().catch(() => {});
      },
    };
  }

  publish(channel: string, payload: string): Promise<number> {
    const args = ["PUBLISH", channel, payload];
    if (this.topology !== "cluster") return this.send(undefined, args, false) as Promise<number>;
    // A Cluster client sends a keyless command to any node, and messages that entered the bus
    // at different nodes can overtake each other: publish through one master.
    return this.publisher().then((node) => node.sendCommand(args)) as Promise<number>;
  }

  /** The master every publish goes through: the first by address, the same while it is known. */
  private async publisher(): Promise<NodeRedisLike> {
    const c = this.client;
    if (!isReady(c)) await this.send(undefined, ["PING"], false); // waits for the first connection
    const masters = [...(c.masters ?? [])].sort((a, b) =>
      `${a.host}:${a.port}` < `${b.host}:${b.port}` ? -1 : 1,
    );
    const master = masters[0];
    if (master === undefined) throw new Error("no Cluster master is known");
    // nodeClient() hands back the node's current client (cheap), so a recreated one is used.
    return c.nodeClient!(master);
  }

  subscriber(events: SubscriberEvents): Subscriber {
    const connection = this.client.duplicate();
    let readyOnce = false;
    const onReady = () => {
      events.ready(readyOnce);
      readyOnce = true;
    };
    connection.on("error", (err: Error) => events.error(err));
    if (this.topology === "cluster") {
      // A Cluster has no `ready` event: the connection is ready once connected, and ready
      // again after a node it uses (re)connects, when node-redis has resubscribed.
      connection.on("connect", onReady);
      connection.on("node-ready", () => {
        if (readyOnce) events.ready(true);
      });
    } else {
      connection.on("ready", onReady);
    }
    const opened = connection.connect();
    opened.catch((err: unknown) => events.error(err as Error));
    const onMessage: Listener = (payload, channel) => events.message(channel, payload);
    const patterns = new Map<string, Listener>();
    return {
      subscribe: async (channel) => {
        await opened;
        await connection.subscribe(channel, onMessage);
      },
      psubscribe: async (pattern) => {
        await opened;
        let listener = patterns.get(pattern);
        if (listener === undefined) {
          listener = (payload, channel) => events.message(channel, payload, pattern);
          patterns.set(pattern, listener);
        }
        await connection.pSubscribe(pattern, listener);
      },
      unsubscribe: async (channel) => {
        await connection.unsubscribe(channel, onMessage);
      },
      punsubscribe: async (pattern) => {
        const listener = patterns.get(pattern);
        patterns.delete(pattern);
        await connection.pUnsubscribe(pattern, listener);
      },
      close: () => {
        // node-redis lets a connecting client be destroyed: no retrying connection left behind.
        if (connection.isOpen) {
          close();
          return;
        }
        opened.then(close, () => {}).catch(() => {});
        function close() {
          if (typeof connection.destroy === "function") return connection.destroy();
          return connection.disconnect?.();
        }
      },
    };
  }

  async masters(): Promise<NodeHandle[]> {
    const c = this.client;
    if (this.topology === "cluster") {
      return Promise.all(
        (c.masters ?? []).map(async (node) => {
          const client = await c.nodeClient!(node);
          return {
            name: `${node.host}:${node.port}`,
            command: (args: readonly Arg[]) => client.sendCommand(args.map(raw)),
          };
        }),
      );
    }
    const master = this.topology === "sentinel" ? c.getMasterNode?.() : undefined;
    return [
      {
        name: master === undefined ? this.address : `${master.host}:${master.port}`,
        command: (args: readonly Arg[]) => this.send(undefined, args.map(raw), false),
      },
    ];
  }

  ping(): Promise<void> {
    return this.pinger.ping();
  }

  async sentinelMaster(): Promise<string | null> {
    if (this.topology !== "sentinel") return null;
    const master = this.client.getMasterNode?.();
    return master === undefined ? null : `${master.host}:${master.port}`;
  }

  on(event: "ready" | "end" | "error", listener: (err: Error) => void): () => void {
    // A Cluster says `connect` / `disconnect` where a client says `ready` / `end`.
    const name =
      this.topology === "cluster" && event !== "error"
        ? event === "ready"
          ? "connect"
          : "disconnect"
        : event;
    this.client.on(name, listener);
    return () => void this.client.off(name, listener);
  }
}

/** The driver of a node-redis client, Cluster or Sentinel, or undefined for another shape. */
export function nodeRedisDriver(client: object): RedisDriver | undefined {
  const c = client as Partial<NodeRedisLike>;
  if (typeof c.sendCommand !== "function" || typeof c.isOpen !== "boolean") return undefined;
  if (!c.isOpen) {
    throw new InvalidOptionError(
      "the node-redis client is not connected (isOpen is false): call `await client.connect()` before passing it, and do not pass a client after `close()`",
      "redis",
    );
  }
  return new NodeRedisDriver(client as NodeRedisLike);
}
