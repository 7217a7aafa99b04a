/**
 * The chaos suite: faults injected into real Redis topologies while `chaos-app.ts` is under
 * load, and the figures each fault leaves. Used by `npm run chaos` (bench/chaos.ts: every
 * fault, repeated, the table) and by test/chaos.test.ts (a reduced set, asserting the hard
 * guarantees).
 *
 * A round: the load runs until every feature answers normally, the fault is injected, the load
 * goes on until every feature has answered normally for `settleMs` (or `maxRecoveryMs` passed),
 * then the sessions written and the messages published are checked and the topology is made
 * whole (every node up, replicas in sync). A killed node is restarted as soon as its replica
 * took over, while the load runs, as a supervisor would.
 */
import { closeRedisClient } from "../../index.js";
import { type ChaosApp, RATE_LIMIT, startChaosApp } from "./chaos-app.ts";
import { FEATURES } from "./chaos-load.ts";
import { startTopology, type Topology } from "./chaos-topologies.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The faults, by name. */
export const FAULTS = {
  "cluster-sigkill": "Cluster: SIGKILL of a master (its replica is promoted)",
  "cluster-lagkill": "Cluster: SIGKILL of a master whose replica lags 300 ms",
  "cluster-failover": "Cluster: CLUSTER FAILOVER on a replica",
  "cluster-freeze": "Cluster: a master frozen for 3 s (SIGSTOP, SIGCONT)",
  "sentinel-sigkill": "Sentinel: SIGKILL of the master",
  "sentinel-lagkill": "Sentinel: SIGKILL of the master, its replica lagging 300 ms",
  "sentinel-failover": "Sentinel: SENTINEL FAILOVER",
  "sentinel-freeze": "Sentinel: the master frozen for 3 s",
  "proxy-latency": "Standalone: +200 ms each way for 3 s",
  "proxy-stall": "Standalone: network stalled for 3 s",
  "proxy-reset": "Standalone: every connection reset",
  "aof-restart": "Standalone, appendonly yes: SIGKILL and restart",
} as const;
export type Fault = keyof typeof FAULTS;

/** What one round measured. */
export interface RoundFigures {
  fault: Fault;
  replicas: boolean;
  /** Requests answered 5xx, failed or past their deadline between the fault and recovery, per feature. */
  failed: Record<string, number>;
  /** ms from the fault until the feature's last abnormal answer (0: none), per feature. */
  recoveryMs: Record<string, number>;
  /** ms from the fault until every feature answers normally again. */
  allRecoveredMs: number;
  /** Requests with no answer within their deadline (`DEADLINE_MS` of chaos-load.ts). */
  hung: number;
  /** Sessions written ≥ 1 s before the fault and unreadable after. */
  sessionsLostOld: number;
  /** Sessions whose write was acknowledged (200) less than 1 s before the fault, or after it, unreadable after. */
  sessionsLostRecent: number;
  /** Sessions checked. */
  sessionsChecked: number;
  /** Sessions that still answered 5xx when checked (neither found nor known lost). */
  sessionsUnreadable: number;
  doubleGrants: number;
  /** Requests admitted beyond the limit of this round's rate-limit key. */
  overAdmitted: number;
  /** Messages whose publish resolved and that never arrived. */
  messagesLost: number;
  /** ms from the fault until the first message published after it arrived. */
  subscriberBackMs: number;
  /** Times the load's event stream ended and was opened again (a failover should not end it). */
  streamsReopened: number;
  /** True when the health endpoint answered 503 at least once after the fault. */
  healthReported: boolean;
  /** True when the round ended before every feature was normal again. */
  unrecovered: boolean;
  /** True when the features were not all normal for 30 s before the fault (the last round's left over). */
  startedUnhealthy: boolean;
  unhandledRejections: number;
}

/** How long each phase lasts. */
export interface ChaosTiming {
  /** Every feature normal for this long counts as recovered. */
  settleMs: number;
  /** A round gives up waiting for recovery after this. */
  maxRecoveryMs: number;
}

const DEFAULT_TIMING: ChaosTiming = { settleMs: 1000, maxRecoveryMs: 20_000 };

let unhandled = 0;
/** When the current round's fault was injected (`performance.now()`). */
let faultAt = 0;
const onUnhandled = () => unhandled++;

/**
 * Runs `rounds` rounds of each fault of `faults` (they must share a topology kind), with the
 * app's locks and sessions on `replicas: { count: 1 }` when `replicas`, and returns the
 * figures of each round.
 */
export async function runChaos(
  faults: Fault[],
  options: {
    rounds?: number;
    replicas?: boolean;
    client?: "ioredis" | "node-redis";
    /** Sentinel's `down-after-milliseconds`. @default 1000 */
    sentinelDownAfterMs?: number;
    timing?: Partial<ChaosTiming>;
    log?: (line: string) => void;
  } = {},
): Promise<RoundFigures[]> {
  const rounds = options.rounds ?? 1;
  const timing = { ...DEFAULT_TIMING, ...options.timing };
  const log = options.log ?? (() => {});
  const out: RoundFigures[] = [];
  const kinds = new Set(faults.map((f) => f.split("-")[0]));
  if (kinds.size !== 1) throw new Error(`faults of one topology per run (got ${[...kinds]})`);
  const topology = await startTopology(faults[0]!, options.client ?? "ioredis", {
    sentinelDownAfterMs: options.sentinelDownAfterMs,
  });
  process.on("unhandledRejection", onUnhandled);
  const replicas = options.replicas === true ? { count: 1, timeoutMs: 200 } : undefined;
  // The app's log lines carry the time since the round's fault, like the role watcher's.
  const appLog = (line: string) => log(`+${Math.round(performance.now() - faultAt)} ms ${line}`);
  const app = await startChaosApp({ redis: topology.redis, replicas, log: appLog });
  try {
    app.startLoad();
    for (const fault of faults) {
      for (let i = 0; i < rounds; i++) {
        const acked = options.replicas === true;
        const figures = await round({ app, topology, fault, replicas: acked, timing, log });
        log(`${fault} round ${i + 1}/${rounds}: ${JSON.stringify(figures)}`);
        out.push(figures);
      }
    }
  } finally {
    await app.close();
    process.off("unhandledRejection", onUnhandled);
    closeRedisClient(topology.redis);
    await topology.stop();
  }
  return out;
}

/** What a round works with. */
interface RoundContext {
  app: ChaosApp;
  topology: Topology;
  fault: Fault;
  replicas: boolean;
  timing: ChaosTiming;
  log: (line: string) => void;
}

/** One fault, measured (see the module comment). */
async function round(round: RoundContext): Promise<RoundFigures> {
  const { app, topology, timing, log } = round;
  app.rateKey = `r${Date.now()}`;
  // Counted, not thrown: a fault that leaves a feature abnormal longer than a round is itself
  // a finding, and the rounds after it still run.
  const startedUnhealthy = !(await untilNormal(app, timing.settleMs, 30_000));
  const unwatch = process.env.CHAOS_ROLES ? topology.watchRoles?.(log) : undefined;
  try {
    return await measure(round, startedUnhealthy);
  } finally {
    unwatch?.();
  }
}

/** The rest of a round, from the fault on. */
async function measure(round: RoundContext, startedUnhealthy: boolean): Promise<RoundFigures> {
  const { app, topology, fault, replicas, timing, log } = round;
  const unhandledBefore = unhandled;
  const grantsBefore = app.doubleGrants;
  const reopenedBefore = app.streamsReopened;
  const from = app.samples.length;
  const at = await topology.inject(fault);
  faultAt = at;
  const recovered = await untilNormal(app, timing.settleMs, timing.maxRecoveryMs, at);
  const after = app.samples.slice(from);
  const doubleGrants = app.doubleGrants - grantsBefore;
  await app.stopLoad();
  // Rate limit: admitted beyond the limit for this round's key.
  const overAdmitted = Math.max(0, (app.admitted.get(app.rateKey) ?? 0) - RATE_LIMIT);
  // Messages: published (resolved) and never received, after a moment for the last to arrive.
  await sleep(300);
  let messagesLost = 0;
  let firstBack = Number.POSITIVE_INFINITY;
  for (const [n, publishedAt] of app.published) {
    const got = app.received.get(n);
    if (got === undefined) messagesLost++;
    else if (publishedAt > at && got < firstBack) firstBack = got;
  }
  app.published.clear();
  app.received.clear();
  // Sessions: every one written since the last round must still be readable, and so must an
  // older one the load saw answer 401 since then.
  let sessionsLostOld = 0;
  let sessionsLostRecent = 0;
  let sessionsUnreadable = 0;
  const lost: string[] = [];
  const lostCookies = new Set<string>();
  const checked = app.sessions.splice(0);
  const known = new Set(checked.map((w) => w.cookie));
  // Every 401 since the last check, in the round or between rounds, is checked once.
  for (const cookie of app.refusedSessions.splice(0)) {
    if (!known.has(cookie)) {
      known.add(cookie);
      checked.push({ cookie, at: Number.NEGATIVE_INFINITY });
    }
  }
  for (const written of checked) {
    let found = await app.readSession(written.cookie);
    for (let i = 0; found === "failed" && i < 20; i++) {
      await sleep(100);
      found = await app.readSession(written.cookie);
    }
    if (found === true) continue;
    if (found === "failed") {
      sessionsUnreadable++;
      continue;
    }
    lost.push(app.sessionKey(written.cookie));
    lostCookies.add(written.cookie);
    // Read again in a later round it would answer 401 there and be counted a second time.
    app.forgetSession(written.cookie);
    if (written.at <= at - 1000) sessionsLostOld++;
    else sessionsLostRecent++;
  }
  if (lost.length > 0 && topology.locate) log(`lost: ${await topology.locate(lost)}`);
  const failed: Record<string, number> = {};
  const recoveryMs: Record<string, number> = {};
  let hung = 0;
  for (const feature of [...FEATURES, "health"]) {
    const mine = after.filter((s) => s.feature === feature);
    failed[feature] = mine.filter((s) => s.failed).length;
    // Samples are recorded as they complete: the latest abnormal one by its send time. A 401
    // for a session found lost is that loss, counted above, not the feature failing to answer.
    const abnormal = mine.filter((s) => !s.normal && !lostCookies.has(s.cookie ?? ""));
    const last = Math.max(at, ...abnormal.map((s) => s.at));
    recoveryMs[feature] = Math.round(last - at);
    hung += mine.filter((s) => s.hung).length;
  }
  const allRecoveredMs = Math.max(...FEATURES.map((f) => recoveryMs[f]!));
  await topology.restore();
  app.startLoad();
  return {
    fault,
    replicas,
    failed,
    recoveryMs,
    allRecoveredMs,
    hung,
    sessionsLostOld,
    sessionsLostRecent,
    sessionsChecked: checked.length,
    sessionsUnreadable,
    doubleGrants,
    overAdmitted,
    messagesLost,
    subscriberBackMs: Number.isFinite(firstBack) ? Math.round(firstBack - at) : -1,
    streamsReopened: app.streamsReopened - reopenedBefore,
    unrecovered: !recovered,
    startedUnhealthy,
    healthReported: failed.health! > 0,
    unhandledRejections: unhandled - unhandledBefore,
  };
}

/**
 * Waits until every feature has answered normally for `settleMs` (each at least once, none
 * abnormally), and the samples are newer than `since`; false when `maxMs` passed first.
 */
async function untilNormal(app: ChaosApp, settleMs: number, maxMs: number, since = 0) {
  const started = performance.now();
  for (;;) {
    const now = performance.now();
    const recent = app.samples.filter((s) => s.at >= Math.max(since, now - settleMs));
    const seen = new Set(recent.map((s) => s.feature));
    const healthy =
      now - Math.max(since, started) >= settleMs &&
      FEATURES.every((f) => seen.has(f)) &&
      recent.every((s) => s.normal);
    if (healthy) return true;
    if (now - started > maxMs) return false;
    await sleep(50);
  }
}
