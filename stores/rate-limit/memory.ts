/**
 * The in-process rate limit store: the same algorithms, numbers and state layout as the Lua
 * script in `redis.ts`, on a bounded LRU map (keys escaped or hashed like Redis keys, so each
 * is at most 128 characters). It is the embedded default (no `redis` given) and the fallback
 * while Redis is down. Its state is per process: N processes allow up to N × limit.
 */
import { LRUCache } from "lru-cache";
import { keyPart } from "../core/keys.js";
import {
  MAX_ENTRIES,
  type Policy,
  type PolicyResult,
  type RateLimitStore,
  type StoreAnswer,
} from "./types.js";

/** One window's entry: like a Redis state entry "<kind> <a> <b> <c> <until>". */
interface State {
  kind: string;
  a: number;
  b: number;
  c: number;
  /** When the entry is no longer needed (ms since the epoch). */
  until: number;
}

interface Evaluation {
  ok: boolean;
  avail: number;
  reset: number;
  resetIfCharged: number;
  retry: number;
  marker: number;
  next: State;
}

const EPSILON = 1e-9;

/** Milliseconds since the epoch, with sub-millisecond precision like Redis `TIME`. */
function clock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Rate limit state in this process, bounded to `maxKeys` keys (least recent evicted). Each
 * key and policy position holds up to `MAX_ENTRIES` entries, one per window, most recently
 * written first, as in Redis.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly states: LRUCache<string, State[]>;
  private readonly blocks: LRUCache<string, true>;

  constructor(maxKeys: number) {
    this.states = new LRUCache({ max: maxKeys });
    this.blocks = new LRUCache({ max: maxKeys });
  }

  async consume(key: string, policies: readonly Policy[], cost: number, blockMs: number) {
    return this.evaluate(keyPart(key), policies, cost, blockMs, true);
  }

  async peek(key: string, policies: readonly Policy[], cost: number) {
    return this.evaluate(keyPart(key), policies, cost, 0, false);
  }

  async refund(
    key: string,
    policies: readonly Policy[],
    cost: number,
    markers: readonly number[],
  ): Promise<boolean> {
    policies.forEach((p, i) => {
      const state = this.states.get(`${keyPart(key)}\n${i}`)?.find((s) => s.kind === kindOf(p));
      if (state === undefined) return;
      const marker = markers[i] ?? 0;
      if (p.algorithm === "fixed-window" || p.algorithm === "sliding-window") {
        if (state.a === marker) state.b = Math.max(0, state.b - cost);
        else if (p.algorithm === "sliding-window" && state.a === marker + 1) {
          state.c = Math.max(0, state.c - cost);
        }
      } else if (p.algorithm === "token-bucket") {
        state.a = Math.min(p.limit, state.a + cost);
      } else {
        state.a -= (cost * p.windowMs) / p.limit;
      }
    });
    return false; // no other process reads this memory
  }

  async reset(key: string, positions: number) {
    const id = keyPart(key);
    this.blocks.delete(id);
    for (let i = 0; i < positions; i++) this.states.delete(`${id}\n${i}`);
  }

  async block(key: string, ms: number) {
    this.blocks.set(keyPart(key), true, { ttl: ms });
  }

  private evaluate(
    key: string,
    policies: readonly Policy[],
    cost: number,
    blockMs: number,
    consume: boolean,
  ): StoreAnswer {
    const now = clock();
    let blocked = Math.ceil(this.blocks.getRemainingTTL(key));
    if (!this.blocks.has(key) || !Number.isFinite(blocked) || blocked < 0) blocked = 0;
    let all = blocked === 0;
    let never = false;
    const evaluations = policies.map((p, i) => {
      const e = evaluatePolicy(p, this.entry(`${key}\n${i}`, p), cost, now);
      if (cost > p.limit) {
        e.ok = false;
        never = true;
      }
      if (!e.ok) all = false;
      return e;
    });
    const charge = consume && all;
    if (consume && !all && !never && blockMs > 0 && blocked === 0) {
      this.blocks.set(key, true, { ttl: blockMs });
      blocked = blockMs;
    }
    const results: PolicyResult[] = policies.map((p, i) => {
      const e = evaluations[i]!;
      let remaining = e.avail;
      let reset = e.reset;
      let retry = 0;
      if (charge) {
        this.write(`${key}\n${i}`, e.next, now);
        remaining = e.avail - cost;
        reset = e.resetIfCharged;
      } else if (!e.ok) {
        retry = cost > p.limit ? -1 : Math.max(1, Math.ceil(e.retry));
      }
      return {
        ...p,
        allowed: e.ok,
        remaining: Math.max(0, Math.floor(remaining + EPSILON)),
        resetMs: Math.max(0, Math.ceil(reset)),
        retryAfterMs: retry,
      };
    });
    return { blockedMs: blocked, policies: results, markers: evaluations.map((e) => e.marker) };
  }

  /** The entry of `policy`'s kind at `id`, or undefined when absent or expired. */
  private entry(id: string, policy: Policy): State | undefined {
    const entries = this.states.get(id);
    if (entries === undefined) return undefined;
    const kind = kindOf(policy);
    for (const state of entries) if (state.kind === kind) return state;
    return undefined;
  }

  /** Puts `next` first at `id`, keeping the other kinds' live entries, like CONSUME's SET. */
  private write(id: string, next: State, now: number): void {
    const entries = this.states.get(id);
    let until = next.until;
    if (entries === undefined) {
      this.states.set(id, [next], { ttl: Math.max(1, Math.ceil(until - now)) });
      return;
    }
    if (entries.length === 1 && entries[0]!.kind === next.kind) {
      entries[0] = next; // one window (a static limiter): replace in place
      this.states.set(id, entries, { ttl: Math.max(1, Math.ceil(until - now)) });
      return;
    }
    const kept = [next];
    for (const state of entries) {
      if (state.kind === next.kind || state.until <= now || kept.length >= MAX_ENTRIES) continue;
      kept.push(state);
      if (state.until > until) until = state.until;
    }
    this.states.set(id, kept, { ttl: Math.max(1, Math.ceil(until - now)) });
  }
}

function kindOf(p: Policy): string {
  return `${p.algorithm}:${p.windowMs}`;
}

/** One policy's decision; mirrors the Lua in `redis.ts` line for line. */
function evaluatePolicy(p: Policy, s: State | undefined, cost: number, now: number): Evaluation {
  const { limit, windowMs: w } = p;
  const kind = kindOf(p);
  switch (p.algorithm) {
    case "fixed-window": {
      const ms = Math.floor(now);
      let a = s?.a;
      let b = s?.b ?? 0;
      if (a === undefined || ms >= a + w) {
        a = ms;
        b = 0;
      }
      const left = a + w - ms;
      const avail = limit - b;
      return {
        ok: cost <= avail,
        avail,
        reset: left,
        resetIfCharged: left,
        retry: left,
        marker: a,
        next: { kind, a, b: b + cost, c: 0, until: now + left },
      };
    }
    case "sliding-window": {
      const idx = Math.floor(now / w);
      let b = 0;
      let c = 0;
      if (s?.a === idx) {
        b = s.b;
        c = s.c;
      } else if (s?.a === idx - 1) {
        c = s.b;
      }
      const toEnd = w - (now - idx * w);
      const avail = limit - ((c * toEnd) / w + b);
      const retry =
        b + cost <= limit
          ? toEnd - (w * (limit - cost - b)) / c
          : toEnd + w * (1 - (limit - cost) / b);
      // Fully restored once every counted unit has slid out of the window.
      const reset = b > 0 ? toEnd + w : c > 0 ? toEnd : 0;
      return {
        ok: cost <= avail + EPSILON,
        avail,
        reset,
        resetIfCharged: toEnd + w,
        retry,
        marker: idx,
        next: { kind, a: idx, b: b + cost, c, until: now + toEnd + w },
      };
    }
    case "token-bucket": {
      const rate = limit / w;
      const tokens = s === undefined ? limit : Math.min(limit, s.a + Math.max(0, now - s.b) * rate);
      return {
        ok: cost <= tokens + EPSILON,
        avail: tokens,
        reset: (limit - tokens) / rate,
        resetIfCharged: (limit - tokens + cost) / rate,
        retry: (cost - tokens) / rate,
        marker: 0,
        next: {
          kind,
          a: Math.max(0, tokens - cost),
          b: now,
          c: 0,
          until: now + (limit - tokens + cost) / rate,
        },
      };
    }
    case "gcra": {
      const interval = w / limit;
      const tat = Math.max(s?.a ?? now, now);
      const newTat = tat + cost * interval;
      return {
        ok: newTat - w <= now + 1e-6,
        avail: (w - (tat - now)) / interval,
        reset: tat - now,
        resetIfCharged: newTat - now,
        retry: newTat - w - now,
        marker: 0,
        next: { kind, a: newTat, b: 0, c: 0, until: newTat },
      };
    }
  }
}
