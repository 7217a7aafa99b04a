/**
 * The in-process rate limit store: the same algorithms and numbers as the Lua script in
 * `redis.ts`, on a bounded LRU map (keys escaped or hashed like Redis keys, so each is at most
 * 128 characters). It is the embedded default (no `redis` given) and the
 * fallback while Redis is down. Its state is per process: N processes allow up to N × limit.
 */
import { LRUCache } from "lru-cache";
import { keyPart } from "../core/keys.js";
import type { Policy, PolicyResult, RateLimitStore, StoreAnswer } from "./types.js";

interface State {
  kind: string;
  a: number;
  b: number;
  c: number;
}

interface Evaluation {
  ok: boolean;
  avail: number;
  reset: number;
  resetIfCharged: number;
  retry: number;
  marker: number;
  next: State;
  ttl: number;
}

const EPSILON = 1e-9;

/** Milliseconds since the epoch, with sub-millisecond precision like Redis `TIME`. */
function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** Rate limit state in this process, bounded to `maxKeys` state entries (least recent evicted). */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly states: LRUCache<string, State>;
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

  async refund(key: string, policies: readonly Policy[], cost: number, markers: readonly number[]) {
    policies.forEach((p, i) => {
      const state = this.states.get(`${keyPart(key)}\n${i}`);
      if (state === undefined || state.kind !== kindOf(p)) return;
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
  }

  async reset(key: string, policyCount: number) {
    const id = keyPart(key);
    this.blocks.delete(id);
    for (let i = 0; i < policyCount; i++) this.states.delete(`${id}\n${i}`);
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
      const e = evaluatePolicy(p, this.live(`${key}\n${i}`, p), cost, now);
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
        this.states.set(`${key}\n${i}`, e.next, { ttl: Math.max(1, Math.ceil(e.ttl)) });
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

  /** The stored state of a policy, or undefined when absent, expired or of another kind. */
  private live(id: string, policy: Policy): State | undefined {
    const state = this.states.get(id);
    return state !== undefined && state.kind === kindOf(policy) ? state : undefined;
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
        next: { kind, a, b: b + cost, c: 0 },
        ttl: left,
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
        next: { kind, a: idx, b: b + cost, c },
        ttl: toEnd + w,
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
        next: { kind, a: Math.max(0, tokens - cost), b: now, c: 0 },
        ttl: (limit - tokens + cost) / rate,
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
        next: { kind, a: newTat, b: 0, c: 0 },
        ttl: newTat - now,
      };
    }
  }
}
