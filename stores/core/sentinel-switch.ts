/**
 * Makes an ioredis Sentinel client built by `createRedisClient()` move to a new master as soon
 * as Sentinel announces it (see `followSwitches()`).
 */
import { backoff, type Ctor, type Topology } from "./client.js";

/** What `followSwitches()` uses of an ioredis client. */
export interface IoSentinelClient {
  status: string;
  stream?: { remotePort?: number };
  disconnect(reconnect?: boolean): void;
  once(event: "end", listener: () => void): unknown;
}

/**
 * A graceful failover (SENTINEL FAILOVER) leaves the old master accepting writes until Sentinel
 * reconfigures it, up to ~10 s later, and those writes are then lost. So listen on every sentinel
 * for `+switch-master` of this group and, when the client is connected elsewhere, reconnect at
 * once: the reconnection asks the sentinels for the new master. Only a ready client is told to
 * reconnect (one still connecting asks the sentinels anyway). ioredis's own `failoverDetector`
 * does the same but, once in a few SIGKILL failovers here, left the client ended for good.
 */
export function followSwitches(
  Redis: Ctor,
  client: IoSentinelClient,
  topology: Extract<Topology, { kind: "sentinel" }>,
  options: { sentinelUsername?: string; sentinelPassword?: string; sentinelTLS?: object },
): void {
  let handled: string | undefined;
  const watchers = topology.nodes.map((node) => {
    const watcher = new Redis({
      ...node,
      username: options.sentinelUsername,
      password: options.sentinelPassword,
      tls: options.sentinelTLS,
      retryStrategy: backoff,
      maxRetriesPerRequest: null,
    }) as unknown as {
      subscribe(channel: string): Promise<unknown>;
      on(event: string, listener: (...args: string[]) => void): unknown;
      disconnect(): void;
    };
    watcher.on("error", () => {}); // a sentinel down: the others still tell
    watcher.subscribe("+switch-master").catch(() => {});
    watcher.on("message", (_channel, message) => {
      // "<name> <old host> <old port> <new host> <new port>"
      const [name, , , , port] = (message ?? "").split(" ");
      // Every sentinel announces the switch: act once per switch. Ports alone cannot tell
      // nodes apart (all on 6379 in most deployments), so reconnect on any switch.
      if (name !== topology.name || message === handled) return;
      handled = message;
      if (client.status === "ready" && port !== undefined) client.disconnect(true);
    });
    return watcher;
  });
  client.once("end", () => {
    for (const watcher of watchers) watcher.disconnect();
  });
}
