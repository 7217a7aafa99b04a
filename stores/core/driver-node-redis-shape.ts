/**
 * What the node-redis driver (driver-node-redis.ts) knows of node-redis 5/6 objects (a client,
 * Cluster or Sentinel, and a pipeline) and its small helpers: reply type mappings, readiness,
 * the first-connection bounds, addresses for labels.
 */
import type { Arg, Topology } from "./driver.js";

export type Raw = string | Buffer;
/** `{ typeMapping: { [BLOB_STRING]: Buffer } }`: `$` (36) is RESP's bulk string type. */
export const AS_BUFFERS = { typeMapping: { 36: Buffer } };
/** No type mapping: replies as the kit expects them, whatever mapping the client was given. */
export const AS_STRINGS = { typeMapping: {} };

export type Listener = (message: string, channel: string) => void;

/** What this adapter uses of a node-redis client, Cluster or Sentinel. */
export interface NodeRedisLike {
  isOpen: boolean;
  isReady: boolean;
  options?: { url?: string; socket?: { host?: string; port?: number }; keyPrefix?: Raw };
  _keyPrefix?: Raw;
  sendCommand(...args: unknown[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  destroy?(): unknown;
  disconnect?(): Promise<unknown>;
  subscribe(channel: string, listener: Listener): Promise<unknown>;
  pSubscribe(pattern: string, listener: Listener): Promise<unknown>;
  unsubscribe(channel: string, listener?: Listener): Promise<unknown>;
  pUnsubscribe(pattern: string, listener?: Listener): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
  // Cluster
  masters?: { host: string; port: number }[];
  nodeClient?(node: unknown): Promise<NodeRedisLike> | NodeRedisLike;
  /** The Cluster's slot map object (not in node-redis's documented API; used when present). */
  _slots?: { rediscover?(startWith?: unknown): Promise<unknown> };
  _self?: NodeRedisLike;
  // Sentinel
  getMasterNode?(): { host: string; port: number } | undefined;
}

/** A node-redis pipeline (`multi()`), whatever the topology's `addCommand` signature. */
export interface NodeRedisMulti {
  addCommand(...args: unknown[]): NodeRedisMulti;
  execAsPipeline(): Promise<unknown[]>;
}

/** NOSCRIPT, as a command's error or inside a pipeline's (`MultiErrorReply.replies`). */
export function isNoScript(err: unknown): boolean {
  if (String((err as Error)?.message).startsWith("NOSCRIPT")) return true;
  const replies = (err as { replies?: unknown[] })?.replies;
  return (
    Array.isArray(replies) &&
    replies.some((r) => r instanceof Error && r.message.startsWith("NOSCRIPT"))
  );
}

/** How long a command may wait for a Cluster's or Sentinel's first connection. */
export const FIRST_CONNECT_WAIT_MS = 5000;
/** How many commands may wait for it at once. */
export const FIRST_CONNECT_QUEUE = 1000;

export function notConnected(topology: Topology): Error {
  return new Error(
    `the node-redis ${topology === "cluster" ? "Cluster" : "Sentinel"} client has not connected yet`,
  );
}

/** node-redis 5's Cluster has no `isReady`: there, open means ready. */
export function isReady(c: NodeRedisLike): boolean {
  return typeof c.isReady === "boolean" ? c.isReady : c.isOpen;
}

export function raw(arg: Arg): Raw {
  return typeof arg === "number" ? String(arg) : arg;
}

export function addressOf(c: NodeRedisLike, topology: Topology): string {
  if (topology === "cluster") {
    const names = (c.masters ?? []).map((m) => `${m.host}:${m.port}`).sort();
    return names[0] ?? "(not connected)";
  }
  if (topology === "sentinel") {
    const master = c.getMasterNode?.();
    return master === undefined ? "sentinel" : `${master.host}:${master.port}`;
  }
  const socket = c.options?.socket;
  if (socket?.host !== undefined || socket?.port !== undefined) {
    return `${socket.host ?? "localhost"}:${socket.port ?? 6379}`;
  }
  const url = c.options?.url;
  if (url !== undefined) {
    try {
      const parsed = new URL(url);
      return `${parsed.hostname}:${parsed.port || 6379}`; // never the credentials
    } catch {
      // not a URL: fall through
    }
  }
  return "localhost:6379";
}

/** A master of node-redis's slot map, with its connection when it has one. */
type ShardNode = { host: string; port: number; client?: NodeRedisLike; connectPromise?: unknown };

/**
 * PINGs every master of the node-redis Cluster `c`; a node still connecting or reconnecting
 * (it would hold the PING until it is back) fails it at once.
 */
export async function pingMasters(c: NodeRedisLike): Promise<void> {
  const masters = (c.masters ?? []) as ShardNode[];
  if (masters.length === 0) throw new Error("no master known yet");
  await Promise.all(
    masters.map(async (node) => {
      if (
        node.connectPromise !== undefined ||
        (node.client !== undefined && !isReady(node.client))
      ) {
        throw new Error(`the master ${node.host}:${node.port} is not connected`);
      }
      await (await c.nodeClient!(node)).sendCommand(["PING"]);
    }),
  );
}

/** Asks node-redis's Cluster `c` for its slot map again (internal; used only when there). */
export function rediscover(c: NodeRedisLike): void {
  (c._self ?? c)._slots?.rediscover?.().catch(() => {});
}

/** How the driver sends a command: routed by `firstKey` on a Cluster. */
export type Send = (
  firstKey: string | undefined,
  args: Raw[],
  buffers: boolean,
) => Promise<unknown>;

/**
 * A standalone client queues commands while it connects; a Cluster or Sentinel refuses them
 * ("The client is offline") until its first connection is made. The `send` this returns makes
 * commands wait for it, like a standalone client's offline queue, but boundedly: at most
 * FIRST_CONNECT_WAIT_MS each (past it a command is failed, never sent late) and at most
 * FIRST_CONNECT_QUEUE of them. `connected` runs once the client is (the driver then sends
 * through `send` directly).
 */
export function waitingForFirstConnect(
  c: NodeRedisLike,
  topology: Topology,
  send: Send,
  connected: () => void,
): Send {
  const event = topology === "cluster" ? "connect" : "ready";
  const waiting = new Set<() => void>();
  const onConnect = () => {
    c.off(event, onConnect);
    connected();
    for (const go of waiting) go();
    waiting.clear();
  };
  c.on(event, onConnect);
  return (key, args, buffers) => {
    if (isReady(c)) return send(key, args, buffers);
    if (waiting.size >= FIRST_CONNECT_QUEUE) return Promise.reject(notConnected(topology));
    return new Promise((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        waiting.delete(go);
        send(key, args, buffers).then(resolve, reject);
      };
      const timer = setTimeout(() => {
        waiting.delete(go);
        reject(notConnected(topology));
      }, FIRST_CONNECT_WAIT_MS);
      waiting.add(go);
    });
  };
}
