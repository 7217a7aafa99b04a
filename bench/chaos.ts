/**
 * `npm run chaos`: every fault of test/harness/chaos.ts, `ROUNDS` times each (default 3; the
 * SIGKILL failovers (plain, and with the replica lagging) `KILL_ROUNDS` times with `replicas`
 * and `KILL_ROUNDS_OFF` times without,
 * both default 20), against
 * servers it starts itself. Prints the table and writes it, with every round's figures, under
 * bench/results/chaos-<time>.{md,json}.
 *
 *   FAULTS=cluster-sigkill,proxy-stall ROUNDS=1 KILL_ROUNDS=2 CLIENT=node-redis npm run chaos
 *
 * `REPLICAS_ALL=1` runs the other Cluster and Sentinel faults with `replicas` too.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAULTS, type Fault, type RoundFigures, runChaos } from "../test/harness/chaos.ts";
import { FEATURES } from "../test/harness/chaos-load.ts";

const rounds = Number(process.env.ROUNDS ?? 3);
const killRounds = Number(process.env.KILL_ROUNDS ?? 20);
const killRoundsOff = Number(process.env.KILL_ROUNDS_OFF ?? killRounds);
const client = (process.env.CLIENT ?? "ioredis") as "ioredis" | "node-redis";
const downAfterMs = Number(process.env.SENTINEL_DOWN_AFTER_MS ?? 1500);
if (!Number.isInteger(downAfterMs) || downAfterMs < 100) {
  throw new Error(
    `SENTINEL_DOWN_AFTER_MS must be an integer ≥ 100 (got ${process.env.SENTINEL_DOWN_AFTER_MS})`,
  );
}
const chosen = (process.env.FAULTS?.split(",") ?? Object.keys(FAULTS)) as Fault[];
for (const f of chosen) if (!(f in FAULTS)) throw new Error(`unknown fault ${f}`);

/** The runs: one per topology kind and replicas setting. */
const plan: { faults: Fault[]; replicas: boolean; rounds: number }[] = [];
for (const kind of ["cluster", "sentinel", "proxy", "aof"]) {
  const faults = chosen.filter((f) => f.startsWith(`${kind}-`));
  const isKill = (f: Fault) => f.endsWith("-sigkill") || f.endsWith("-lagkill");
  const kills = faults.filter(isKill);
  const others = faults.filter((f) => !isKill(f));
  if (others.length > 0) plan.push({ faults: others, replicas: false, rounds });
  // Standalone has no replica to acknowledge anything.
  if (
    others.length > 0 &&
    process.env.REPLICAS_ALL === "1" &&
    (kind === "cluster" || kind === "sentinel")
  ) {
    plan.push({ faults: others, replicas: true, rounds });
  }
  for (const replicas of [false, true]) {
    const n = replicas ? killRounds : killRoundsOff;
    if (kills.length > 0) plan.push({ faults: kills, replicas, rounds: n });
  }
}

const all: RoundFigures[] = [];
const started = Date.now();
for (const step of plan) {
  process.stdout.write(
    `chaos: ${step.faults.join(", ")}${step.replicas ? " with replicas: { count: 1 }" : ""}, ${step.rounds} round(s)\n`,
  );
  all.push(
    ...(await runChaos(step.faults, {
      rounds: step.rounds,
      replicas: step.replicas,
      client,
      sentinelDownAfterMs: downAfterMs,
      log: (line) => process.env.VERBOSE && process.stdout.write(`  ${line}\n`),
    })),
  );
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => x >= 0).sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor((s.length - 1) / 2)]!;
};
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const rows: string[] = [
  "| fault | replicas | rounds | failed requests (rl/cache/lock/sess/pubsub) | recovery ms median (max) | hung | sessions lost ≥1 s old / recent (checked, unreadable) | lock double grants | rate-limit over-admission (max per round) | messages lost | subscriber back ms median | unrecovered (started unhealthy) | unhandled rejections |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];
for (const step of plan) {
  for (const fault of step.faults) {
    const rs = all.filter((r) => r.fault === fault && r.replicas === step.replicas);
    if (rs.length === 0) continue;
    const failed = FEATURES.map((f) => sum(rs.map((r) => r.failed[f] ?? 0))).join("/");
    const rec = rs.map((r) => r.allRecoveredMs);
    rows.push(
      `| ${FAULTS[fault]} | ${step.replicas ? "count 1" : "off"} | ${rs.length} | ${failed} | ${median(rec)} (${Math.max(...rec)}) | ${sum(rs.map((r) => r.hung))} | ${sum(rs.map((r) => r.sessionsLostOld))} / ${sum(rs.map((r) => r.sessionsLostRecent))} (${sum(rs.map((r) => r.sessionsChecked))}, ${sum(rs.map((r) => r.sessionsUnreadable))}) | ${sum(rs.map((r) => r.doubleGrants))} | ${sum(rs.map((r) => r.overAdmitted))} (${Math.max(...rs.map((r) => r.overAdmitted))}) | ${sum(rs.map((r) => r.messagesLost))} | ${median(rs.map((r) => r.subscriberBackMs))} | ${rs.filter((r) => r.unrecovered).length} (${rs.filter((r) => r.startedUnhealthy).length}) | ${sum(rs.map((r) => r.unhandledRejections))} |`,
    );
  }
}
const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
const header = `# Chaos run ${stamp}\n\nclient ${client}, ${Math.round((Date.now() - started) / 1000)} s, command: \`${process.argv.slice(1).join(" ")}\` with FAULTS=${process.env.FAULTS ?? "(all)"} ROUNDS=${rounds} KILL_ROUNDS=${killRounds} KILL_ROUNDS_OFF=${killRoundsOff} SENTINEL_DOWN_AFTER_MS=${downAfterMs} CHAOS_REDIS_ARGS=${JSON.stringify(process.env.CHAOS_REDIS_ARGS ?? "")}\n\n`;
const table = `${rows.join("\n")}\n`;
process.stdout.write(`\n${table}`);
const dir = join(import.meta.dirname, "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, `chaos-${stamp}.md`), header + table);
writeFileSync(join(dir, `chaos-${stamp}.json`), `${JSON.stringify(all, null, 1)}\n`);
process.stdout.write(`written: bench/results/chaos-${stamp}.md and .json\n`);
process.exit(0);
