/**
 * The in-process transport of `createPubSub()` (no `redis`): one bus per process, shared by
 * every memory-backed instance like one Redis server, with Redis's glob patterns.
 */
import type { Deliver, Transport } from "./pubsub.js";

/** Each deliverer returns how many of its subscriptions the message reached. */
const localBus = new Set<(channel: string, payload: string) => number>();

/** Redis's glob (`*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`) as a regular expression. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") source += "[\\s\\S]*";
    else if (c === "?") source += "[\\s\\S]";
    else if (c === "\\" && i + 1 < glob.length) source += literal(glob[++i]!);
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close === -1) {
        source += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, close);
      const negate = body.startsWith("^");
      if (negate) body = body.slice(1);
      source += `[${negate ? "^" : ""}${body.replace(/[\\\]]/g, "\\$&")}]`;
      i = close;
    } else source += literal(c);
  }
  return new RegExp(`^${source}$`);
}

function literal(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** See the module comment. */
export class LocalTransport implements Transport {
  private readonly channels = new Set<string>();
  private readonly patterns = new Map<string, RegExp>();
  private readonly deliver = (channel: string, payload: string): number => {
    let reached = 0;
    if (this.channels.has(channel)) {
      reached++;
      queueMicrotask(() => this.onMessage(channel, payload));
    }
    for (const [pattern, re] of this.patterns) {
      if (!re.test(channel)) continue;
      reached++;
      queueMicrotask(() => this.onMessage(channel, payload, pattern));
    }
    return reached;
  };

  constructor(private readonly onMessage: Deliver) {
    localBus.add(this.deliver);
  }

  async publish(channel: string, payload: string): Promise<number> {
    let receivers = 0; // like Redis: the subscriptions reached (channel and pattern ones)
    for (const deliver of localBus) receivers += deliver(channel, payload);
    return receivers;
  }

  async listen(name: string, pattern: boolean): Promise<void> {
    if (pattern) this.patterns.set(name, globToRegExp(name));
    else this.channels.add(name);
  }

  async unlisten(name: string, pattern: boolean): Promise<void> {
    if (pattern) this.patterns.delete(name);
    else this.channels.delete(name);
  }

  async close(): Promise<void> {
    localBus.delete(this.deliver);
  }
}
