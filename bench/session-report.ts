/**
 * The session benchmark's report: its table, the targets, the comparisons between the
 * two stores, problems, and the results file.
 */
import { config } from "./config.js";
import { machineLine, reportTexts } from "./report.js";
import type { SessionRun } from "./session-suite.js";
import {
  parseSessionEntry,
  SESSION_DESCRIPTIONS,
  SESSION_SCENARIOS,
  type SessionScenario,
  type SessionVariant,
  STORE_OPS,
  sessionEntry,
} from "./session-variants.js";
import {
  commandMix,
  fmt,
  fmtInt,
  median,
  medianRatio,
  nodeRedisTargetLine,
  outsideLoadLine,
  percent,
  type RunFailure,
  summarize,
  type VariantSummary,
} from "./stats.js";
import type { BenchEnv, SuiteReport } from "./suite.js";

/** The goal: an unmodified read through `UserSessionStore` at this × connect-redis's req/s. */
const READ_TARGET = 1.3;

/** The entries, variant-major: `bare/read`, `bare/write`, `connect-redis/read`, ... */
export const SESSION_ENTRIES = config.sessionVariants.flatMap((v) =>
  config.sessionScenarios.map((s) => sessionEntry(v, s)),
);

/** The baseline of an entry: `bare` on the same scenario. */
function baselineOf(entry: string): string {
  return sessionEntry("bare", parseSessionEntry(entry).scenario);
}

/** What is wrong with a run's store calls: a read must not save, a write must save every time. */
export function opProblem(run: SessionRun): string | undefined {
  const { variant, scenario } = parseSessionEntry(run.variant);
  if (variant === "bare") return undefined;
  const { get, set } = run.opsPerReq;
  if (scenario === "read" && set > 0.01)
    return `${set.toFixed(2)} saves/req on an unmodified read (must be 0)`;
  if (scenario === "write" && Math.abs(set - 1) > 0.01)
    return `${set.toFixed(2)} saves/req on a write (must be 1)`;
  if (Math.abs(get - 1) > 0.01) return `${get.toFixed(2)} reads/req (must be 1)`;
  return undefined;
}

/** Median over `runs` of the commands each store method sent per call in the probe. */
function sentPerOp(runs: readonly SessionRun[]): Record<string, number> {
  return Object.fromEntries(STORE_OPS.map((op) => [op, median(runs.map((r) => r.sentPerOp[op]))]));
}

function summaryTable(summaries: readonly VariantSummary[], runs: readonly SessionRun[]): string {
  const lines = [
    "| variant | scenario | req/s | ×bare | p99 ms | ×bare | CPU µs/req | ×bare | round trips/req | store get / set / touch per req | sent per get / set / touch (probe) | Redis cmds/req | script calls/req |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    const { variant, scenario } = parseSessionEntry(s.variant);
    const mine = runs.filter((r) => r.variant === s.variant);
    const m = s.median;
    const r = s.ratioToBare;
    const calls = STORE_OPS.slice(0, 3)
      .map((op) => fmt(median(mine.map((x) => x.opsPerReq[op])), 2))
      .join(" / ");
    const sent = sentPerOp(mine);
    const perOp = STORE_OPS.slice(0, 3)
      .map((op) => fmt(sent[op] ?? Number.NaN, 2))
      .join(" / ");
    const store = variant !== "bare";
    lines.push(
      `| ${variant} | ${scenario} | ${fmtInt(m.reqPerSec)} | ${fmt(r.reqPerSec, 2)} | ${fmt(m.p99Ms, 1)} | ${fmt(r.p99Ms, 2)} | ` +
        `${fmt(m.cpuUsPerReq, 1)} | ${fmt(r.cpuUsPerReq, 2)} | ${fmt(m.roundTripsPerReq, 2)} | ${store ? calls : "-"} | ` +
        `${store ? perOp : "-"} | ${fmt(m.redisCmdsPerReq, 2)} | ${fmt(m.scriptCallsPerReq, 2)} |`,
    );
  }
  return lines.join("\n");
}

function rawTable(runs: readonly SessionRun[]): string {
  const lines = [
    "| round | order | variant/scenario | req/s | p99 ms | CPU µs/req | round trips/req | probe round trips/req | Redis cmds/req | served | non-2xx | errors | other load on CPU 0 | ended |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.order} | ${r.variant} | ${fmtInt(r.reqPerSec)} | ${fmt(r.p99Ms, 0)} | ${fmt(r.cpuUsPerReq, 1)} | ` +
        `${fmt(r.roundTripsPerReq ?? Number.NaN, 2)} | ${fmt(r.probeRoundTripsPerReq, 2)} | ${fmt(r.redisCmdsPerReq, 2)} | ` +
        `${r.served} | ${r.non2xx} | ${r.errors + r.timeouts} | ${percent(r.otherLoadOnServerCore)} | ${r.at?.slice(11, 19) ?? ""} |`,
    );
  }
  return lines.join("\n");
}

/** erk / connect-redis and erk-nr / erk on each scenario: medians of per-round ratios. */
function comparisonLines(runs: readonly SessionRun[]): string[] {
  const pairs: [SessionVariant, SessionVariant][] = [
    ["erk", "connect-redis"],
    ["erk-nr", "erk"],
  ];
  return pairs
    .flatMap(([a, b]) =>
      config.sessionScenarios.map((scenario) => [
        sessionEntry(a, scenario),
        sessionEntry(b, scenario),
      ]),
    )
    .filter(([a, b]) => runs.some((r) => r.variant === a) && runs.some((r) => r.variant === b))
    .map(
      ([a, b]) =>
        `- ${a} / ${b}: req/s ×${fmt(medianRatio(runs, a!, b!, "reqPerSec"), 2)}, ` +
        `p99 ×${fmt(medianRatio(runs, a!, b!, "p99Ms"), 2)}, CPU µs/req ×${fmt(medianRatio(runs, a!, b!, "cpuUsPerReq"), 2)}`,
    );
}

/** The targets against the measured medians, and connect-redis's figures for context. */
function targetLines(summaries: readonly VariantSummary[], runs: readonly SessionRun[]): string[] {
  const find = (v: SessionVariant, s: SessionScenario) =>
    summaries.find((x) => x.variant === sessionEntry(v, s));
  const runsOf = (v: SessionVariant, s: SessionScenario) =>
    runs.filter((r) => r.variant === sessionEntry(v, s));
  const verdict = (met: boolean) => (met ? "**met**" : "**NOT met**");
  const lines: string[] = [];

  const erkRead = find("erk", "read");
  const crRead = find("connect-redis", "read");
  if (erkRead === undefined || crRead === undefined) {
    lines.push(`- erk read ≥ ${READ_TARGET.toFixed(2)}× connect-redis req/s: not measured`);
  } else {
    const a = erkRead.variant;
    const b = crRead.variant;
    const ratio = medianRatio(runs, a, b, "reqPerSec");
    lines.push(
      `- unmodified read, erk / connect-redis req/s (target ≥ ${READ_TARGET.toFixed(2)}×): ×${fmt(ratio, 2)} ` +
        `(median of per-round ratios; ratio of medians ×${fmt(erkRead.median.reqPerSec / crRead.median.reqPerSec, 2)}; ` +
        `${fmtInt(erkRead.median.reqPerSec)} vs ${fmtInt(crRead.median.reqPerSec)} req/s) → ` +
        (Number.isFinite(ratio) ? verdict(ratio >= READ_TARGET) : "n/a"),
    );
  }
  if (erkRead === undefined) {
    lines.push("- erk read sends 1 command per request: not measured");
  } else {
    const trips = erkRead.median.roundTripsPerReq;
    const sent = sentPerOp(runsOf("erk", "read"));
    lines.push(
      `- unmodified read, erk (target exactly 1 command sent per request): ${fmt(trips, 3)} under load ` +
        `(probe: get sends ${fmt(sent.get ?? Number.NaN, 2)}, touch ${fmt(sent.touch ?? Number.NaN, 2)}); ` +
        `INFO commandstats: ${fmt(erkRead.median.scriptCallsPerReq, 2)} script calls/req, ` +
        `${fmt(erkRead.median.redisCmdsPerReq, 2)} calls/req counting the commands the script runs → ` +
        verdict(Math.abs(trips - 1) < 0.005),
    );
  }
  const erkWrite = find("erk", "write");
  if (erkWrite === undefined) {
    lines.push("- erk write: the save sends 1 command: not measured");
  } else {
    const sent = sentPerOp(runsOf("erk", "write"));
    const save = sent.set ?? Number.NaN;
    lines.push(
      `- write, erk on standalone Redis (target: the save sends at most 1 command): the save (set) sends ${fmt(save, 2)} (probe); ` +
        `a write request sends ${fmt(erkWrite.median.roundTripsPerReq, 2)} under load, the read at its start ` +
        `(${fmt(sent.get ?? Number.NaN, 2)}) and the save → ${verdict(Math.abs(save - 1) < 0.005)}`,
    );
  }
  const context = SESSION_SCENARIOS.map((s) => find("connect-redis", s))
    .filter((x): x is VariantSummary => x !== undefined)
    .map((x) => {
      const sent = sentPerOp(runs.filter((r) => r.variant === x.variant));
      const ops = STORE_OPS.slice(0, 3)
        .filter((op) => Number.isFinite(sent[op] ?? Number.NaN))
        .map((op) => `${op} ${fmt(sent[op]!, 2)}`)
        .join(", ");
      return `${parseSessionEntry(x.variant).scenario} ×${fmt(x.ratioToBare.reqPerSec, 2)} bare req/s, ${fmt(x.median.roundTripsPerReq, 2)} round trips/req (${ops})`;
    });
  if (context.length > 0)
    lines.push(
      `- context, connect-redis (the issue: an unmodified read costs GET + EXPIRE, about 0.70× bare): ${context.join("; ")}`,
    );
  if (config.sessionVariants.includes("erk-nr"))
    for (const s of config.sessionScenarios)
      lines.push(nodeRedisTargetLine(runs, sessionEntry("erk-nr", s), sessionEntry("erk", s)));
  return lines;
}

/** The whole report of the session benchmark. */
export function sessionReport(
  runs: readonly SessionRun[],
  failures: readonly RunFailure[],
  env: BenchEnv,
  startedAt: Date,
): SuiteReport {
  const summaries = summarize(runs, SESSION_ENTRIES, baselineOf);
  const table = summaryTable(summaries, runs);
  const targets = targetLines(summaries, runs);
  const comparisons = comparisonLines(runs);
  const bad = summaries.filter((s) => s.non2xx + s.errors + s.timeouts > 0);
  const wrongOps = runs.filter((r) => opProblem(r) !== undefined);
  const logged = runs.filter((r) => r.serverLog !== undefined);
  const problems = [
    ...bad.map(
      (s) =>
        `- ${s.variant}: non-2xx ${s.non2xx}, socket errors ${s.errors}, timeouts ${s.timeouts} (must be 0)`,
    ),
    ...wrongOps.map((r) => `- ${r.variant} round ${r.round}: ${opProblem(r)}`),
    ...logged.map(
      (r) => `- ${r.variant} round ${r.round}: server log: ${r.serverLog!.replace(/\n/g, " / ")}`,
    ),
    ...failures.map((f) => `- ${f.variant} failed in round ${f.round}: ${f.error.split("\n")[0]}`),
  ];
  const texts = reportTexts({
    heading: "Session store",
    title: `Session benchmark ${startedAt.toISOString()}`,
    intro: [
      `${config.rounds} round(s), ${config.durationS} s per run after a login, a check, a probe of ` +
        `sequential requests and a ${config.warmupS} s warm-up, ${config.connections} connections, all on one logged-in session. ` +
        machineLine(env),
      "Medians over rounds; ×bare is the median of per-round ratios to `bare` on the same scenario. " +
        "Round trips/req counts the commands the server's Redis client sent; store get / set / touch " +
        "per req counts express-session's calls of the store; sent per get / set / touch is measured " +
        "on requests sent one at a time before the load; Redis cmds/req counts what INFO commandstats " +
        "counts (a script call and the commands it runs).",
    ],
    table,
    targets,
    comparisons: comparisons.join("\n"),
    problems,
    noProblems:
      "None: non-2xx responses 0, every read left the session unmodified and every write saved it.",
    noise: outsideLoadLine(runs),
    mixes: [
      {
        heading: "Redis calls per request by command (median, INFO commandstats)",
        text: commandMix(runs, SESSION_ENTRIES),
        printed: true,
      },
    ],
    variants: [
      config.sessionVariants.map((v) => `- ${v}: ${SESSION_DESCRIPTIONS[v]}`).join("\n"),
      "Scenarios: `read` is GET /read, which answers a small JSON with `req.session.userId` and " +
        "leaves the session unmodified; `write` is POST /write, which increments `req.session.counter`.",
    ],
    raw: rawTable(runs),
  });
  return {
    ...texts,
    json: { summaries, targets, comparisons },
    failed: failures.length > 0 || bad.length > 0 || wrongOps.length > 0,
  };
}
