/**
 * What the ioredis driver (driver-ioredis.ts) knows of ioredis and iovalkey objects (the shapes
 * of a connection, a Cluster, a pipeline), and its node helpers: names, the publishing master,
 * and the watch that tells when a Cluster subscriber moved to another node.
 */
import type { Arg, SubscriberEvents } from "./driver.js";

/** The part of an ioredis (or iovalkey) node connection this adapter uses. */
export interface IoNode {
  status: string;
  options: {
    host?: string;
    port?: number;
    keyPrefix?: string;
    path?: string;
    autoResendUnfulfilledCommands?: boolean;
    sentinels?: { host?: string; port?: number }[] | null;
    name?: string;
  };
  call(...args: Arg[]): Promise<unknown>;
  publish(channel: string, payload: string): Promise<number>;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  duplicate(): IoConnection;
  on(event: string, listener: (...args: never[]) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
}

/** A connection or Cluster as far as subscribing goes. */
export interface IoConnection {
  subscribe(channel: string): Promise<unknown>;
  psubscribe(pattern: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  punsubscribe(pattern: string): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

export interface IoCluster extends IoNode {
  isCluster: true;
  options: IoNode["options"] & { redisOptions?: IoNode["options"] };
  startupNodes: ({ host?: string; port?: number } | string | number)[];
  nodes(role: "master" | "all"): IoNode[];
  /** The slot map: per slot, the `host:port` of its master, then its replicas. */
  slots: (string[] | undefined)[];
  /** Asks a node for the slot map again (ioredis, iovalkey; not in their typings' docs). */
  refreshSlotsCache?(callback?: (err?: Error) => void): void;
  /** A `host:port` as the connection pool names it, after `natMap` (not in the typings). */
  natMapper?(key: string): { host: string; port: number };
}

/** A connection's socket, for where it is connected. */
export type IoStreamed = { stream?: { remoteAddress?: string; remotePort?: number } };

/** A connection's socket as far as batching its writes goes. */
export type Corkable = { cork(): void; uncork(): void; writable: boolean };

export type ScriptMethod = (...keysAndArgs: Arg[]) => Promise<unknown>;

/** An ioredis pipeline as far as replica acknowledgement goes. */
export interface IoPipeline {
  call(...args: Arg[]): IoPipeline;
  exec(): Promise<[Error | null, unknown][]>;
}

/**
 * A Cluster client subscribes through one node's connection, and when that connection ends (its
 * node died) it silently picks another node and subscribes there again: the Cluster emits no
 * `ready`. Watch each such connection; once a replacement has sent its SUBSCRIBEs (a PING queued
 * behind them has its answer), report `ready(true)`, so `onResubscribed` runs.
 */
export function watchClusterSubscriber(connection: IoConnection, events: SubscriberEvents): void {
  type Instance = {
    once(event: "end", listener: () => void): unknown;
    ping(): Promise<unknown>;
  };
  const inner = connection as unknown as { subscriber?: { getInstance?(): Instance | null } };
  const seen = new WeakSet<Instance>();
  let first = true;
  const watch = () => {
    const instance = inner.subscriber?.getInstance?.();
    if (instance === null || instance === undefined || seen.has(instance)) return;
    seen.add(instance);
    // ioredis replaces an ended subscriber in its own "end" listener, registered before this one.
    instance.once("end", watch);
    if (first) {
      first = false;
      return;
    }
    instance.ping().then(
      () => events.ready(true),
      () => {},
    );
  };
  connection.on("ready", watch);
}

export function nodeName(node: IoNode): string {
  if (node.options.path) return `unix ${node.options.path}`;
  return `${node.options.host ?? "127.0.0.1"}:${node.options.port ?? 6379}`;
}

export function seedAddress(cluster: IoCluster): string {
  const seed = cluster.startupNodes[0];
  if (typeof seed === "object" && seed !== null)
    return `${seed.host ?? "127.0.0.1"}:${seed.port ?? 6379}`;
  return String(seed ?? "cluster");
}

/** The master every publish of a Cluster client goes through (the same while it is known). */
export function publisherOf(cluster: IoCluster): IoNode | undefined {
  let first: IoNode | undefined;
  let firstName = "";
  for (const node of cluster.nodes("master")) {
    const name = nodeName(node);
    if (first === undefined || name < firstName) {
      first = node;
      firstName = name;
    }
  }
  return first;
}

/** Connection states in which a command would wait for a reconnect (or never be sent). */
const DOWN = new Set(["reconnecting", "close", "end"]);

/**
 * PINGs every master of `cluster`'s slot map; a master without a connection, or one
 * reconnecting (it would hold the PING until it is back), fails it at once.
 */
export async function pingMasters(cluster: IoCluster): Promise<void> {
  const owners = new Set<string>();
  for (const nodes of cluster.slots) if (nodes?.[0] !== undefined) owners.add(nodes[0]);
  if (owners.size === 0) return void (await cluster.call("PING")); // no map yet
  const pool = new Map(cluster.nodes("all").map((node) => [nodeName(node), node]));
  // A MOVED writes the unmapped address into the map: look it up as the pool names it.
  const named = (owner: string) => {
    const mapped = cluster.natMapper?.(owner);
    return mapped === undefined ? owner : `${mapped.host}:${mapped.port}`;
  };
  const nodes = [...owners].map((owner) => ({ owner, node: pool.get(named(owner)) }));
  const down = nodes.find(({ node }) => node === undefined || DOWN.has(node.status));
  if (down !== undefined) throw new Error(`the master ${down.owner} is not connected`);
  await Promise.all(nodes.map(({ node }) => node!.call("PING")));
}
