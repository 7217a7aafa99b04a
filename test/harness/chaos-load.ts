/**
 * The chaos suite's load: keep-alive HTTP requests to the chaos app's routes, a fixed number in
 * flight, each with a deadline, and a publisher. Every answer is recorded as a sample (feature,
 * time, failed or not, normal or not); sessions whose login was acknowledged are kept for the
 * round's check.
 */

/** The features measured, in the table's order. */
export const FEATURES = [
  "rateLimit",
  "cacheResponse",
  "requireLock",
  "sessions",
  "pubsub",
] as const;
export type Feature = (typeof FEATURES)[number] | "health";

/** One answer (or its absence) as the load saw it. */
export interface Sample {
  feature: Feature;
  /** When the request was sent (ms, `performance.now()`). */
  at: number;
  /** A 5xx, a network error or a missed deadline. */
  failed: boolean;
  /** The answer the feature gives when Redis is healthy (Redis-backed, not a fallback). */
  normal: boolean;
  /** No answer within the deadline. */
  hung: boolean;
  /** A session read answered 401: the session's cookie (lost, or not readable for a while). */
  cookie?: string;
}

/**
 * A request with no answer within this is counted as hung (every feature's deadline is ≤ 1 s);
 * a lock request gets the holder's working time on top.
 */
export const DEADLINE_MS = 3000;

/** A session the load created: its cookie, when its write was acknowledged (200). */
export interface WrittenSession {
  cookie: string;
  at: number;
}

/** What the load drives. */
export interface LoadTarget {
  url: string;
  /** How long a lock holder works before it answers. */
  holdMs: number;
  /** The rate-limit key to use now. */
  rateKey(): string;
  /** Publishes message `n` (the load records the outcome). */
  publish(n: number): Promise<unknown>;
}

export interface Load {
  readonly samples: Sample[];
  /** Sessions acknowledged since the last `splice`, oldest first. */
  readonly sessions: WrittenSession[];
  /** Sequence numbers whose publish resolved, with when. */
  readonly published: Map<number, number>;
  /** Cookies whose session read answered 401 since the last `splice` (to be checked). */
  readonly refused: string[];
  start(concurrency: number): void;
  stop(): Promise<void>;
  /** Reads `cookie`'s session: true when it is there. */
  readSession(cookie: string): Promise<boolean | "failed">;
  /** Stops reading `cookie`'s session (found lost: counted once, in the round that lost it). */
  forget(cookie: string): void;
}

/** A load on `target`, stopped until `start()`. */
export function createLoad(target: LoadTarget): Load {
  const { url, holdMs } = target;
  const samples: Sample[] = [];
  const sessions: WrittenSession[] = [];
  const published = new Map<number, number>();
  const refused: string[] = [];
  let running = false;
  const workers: Promise<void>[] = [];
  let seq = 0;
  let publisher: NodeJS.Timeout | undefined;

  /** One request; its sample is recorded. Resolves with the response (if any) and the sample. */
  async function hit(
    feature: Feature,
    path: string,
    init: RequestInit = {},
    normal?: string,
  ): Promise<{ res?: Response; sample: Sample }> {
    const at = performance.now();
    // A lock holder works `holdMs` before it answers: its deadline counts from then.
    const deadline = DEADLINE_MS + (feature === "requireLock" ? holdMs : 0);
    try {
      const res = await fetch(url + path, { ...init, signal: AbortSignal.timeout(deadline) });
      await res.arrayBuffer();
      const failed = res.status >= 500;
      const ok =
        !failed &&
        (normal === undefined ||
          res.headers.get("x-backend") === normal ||
          normal.split("|").includes(res.headers.get("x-cache") ?? ""));
      const sample: Sample = { feature, at, failed, normal: ok, hung: false };
      samples.push(sample);
      return { res, sample };
    } catch (err) {
      const hung = (err as Error).name === "TimeoutError";
      const sample: Sample = { feature, at, failed: true, normal: false, hung };
      samples.push(sample);
      return { sample };
    }
  }

  const cookies: string[] = [];
  const forget = (cookie: string) => {
    const at = cookies.indexOf(cookie);
    if (at >= 0) cookies.splice(at, 1);
  };
  let turn = 0;
  async function worker() {
    while (running) {
      const n = turn++;
      switch (n % 8) {
        case 0:
          await hit("rateLimit", `/rl/${target.rateKey()}`, {}, "redis");
          break;
        case 1:
          await hit("rateLimit", `/rlc/${target.rateKey()}`, {}, "redis");
          break;
        case 2:
        case 3:
          await hit("cacheResponse", `/cache/${n % 20}`, {}, "HIT|MISS");
          break;
        case 4:
          await hit("requireLock", `/lock/${(n >> 3) % 4}`, { method: "POST" });
          break;
        case 5: {
          const { res } = await hit("sessions", "/login", { method: "POST" });
          const cookie = res?.status === 200 ? res.headers.get("set-cookie") : null;
          if (cookie) {
            const pair = cookie.split(";")[0]!;
            cookies.push(pair);
            sessions.push({ cookie: pair, at: performance.now() });
          }
          break;
        }
        case 6: {
          const cookie = cookies[n % Math.max(1, cookies.length)];
          if (cookie === undefined) break;
          const { res, sample } = await hit("sessions", "/me", { headers: { cookie } });
          if (res?.status === 401) {
            Object.assign(sample, { normal: false, cookie });
            refused.push(cookie);
            // Lost for good (the round's check counts it): asking again would keep the feature
            // abnormal in every later round, though it answers normally.
            forget(cookie);
          }
          break;
        }
        default:
          await hit("health", "/health");
      }
    }
  }

  return {
    samples,
    sessions,
    published,
    refused,
    start(concurrency) {
      running = true;
      for (let i = 0; i < concurrency; i++) workers.push(worker());
      publisher = setInterval(() => {
        const n = seq++;
        const at = performance.now();
        target.publish(n).then(
          () => {
            published.set(n, at);
            samples.push({ feature: "pubsub", at, failed: false, normal: true, hung: false });
          },
          () => samples.push({ feature: "pubsub", at, failed: true, normal: false, hung: false }),
        );
      }, 20);
    },
    async stop() {
      running = false;
      clearInterval(publisher);
      await Promise.all(workers.splice(0));
    },
    forget,
    async readSession(cookie) {
      try {
        const res = await fetch(`${url}/me`, {
          headers: { cookie },
          signal: AbortSignal.timeout(DEADLINE_MS),
        });
        await res.arrayBuffer();
        if (res.status >= 500) return "failed";
        return res.status === 200;
      } catch {
        return "failed";
      }
    },
  };
}
