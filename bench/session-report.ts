/**
 * The session benchmark's report: its table, the targets, the comparisons between the
 * two stores, problems, and the results file.
 */
import { config } from "./config.js";
import { type Column, mainTable, pasteBlock, rawTable } from "./http-report.js";
import { reportTexts } from "./report.js";
import type { SessionRun } from "./session-suite.js";
import {
  parseSessionEntry,
  SCENARIO_REQUESTS,
  SESSION_DESCRIPTIONS,
  SESSION_SCENARIO_SETUPS,
  SESSION_SCENARIOS,
  type SessionScenario,
  type SessionVariant,
  STORE_OPS,
  sessionEntry,
} from "./session-variants.js";
import {
  commandMix,
  comparisonLines,
  fmt,
  fmtInt,
  median,
  medianRatio,
  nodeRedisTargetLine,
  outsideLoadLine,
  type RunFailure,
  runProblems,
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

/** The reference of an entry: `bare` on the same scenario. */
function referenceOf(entry: string): string {
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

/** The main table's columns after the standard ones: round trips, store calls, the probe. */
function storeColumns(runs: readonly SessionRun[]): Column<VariantSummary>[] {
  const mine = (s: VariantSummary) => runs.filter((r) => r.variant === s.variant);
  const store = (s: VariantSummary) => parseSessionEntry(s.variant).variant !== "bare";
  const ops = STORE_OPS.slice(0, 3);
  return [
    { header: "round trips/req", cell: (s) => fmt(s.median.roundTripsPerReq, 2) },
    {
      header: "store get / set / touch per req",
      cell: (s) =>
        store(s)
          ? ops.map((op) => fmt(median(mine(s).map((x) => x.opsPerReq[op])), 2)).join(" / ")
          : "-",
    },
    {
      header: "sent per get / set / touch (probe)",
      cell: (s) => {
        const sent = sentPerOp(mine(s));
        return store(s) ? ops.map((op) => fmt(sent[op] ?? Number.NaN, 2)).join(" / ") : "-";
      },
    },
  ];
}

/** The comparisons: erk / connect-redis, erk-nr / erk, erk-tracked / erk on each scenario. */
function comparisonPairs(): [string, string][] {
  const pairs: [SessionVariant, SessionVariant][] = [
    ["erk", "connect-redis"],
    ["erk-nr", "erk"],
    ["erk-tracked", "erk"],
  ];
  return pairs.flatMap(([a, b]) =>
    config.sessionScenarios.map((scenario): [string, string] => [
      sessionEntry(a, scenario),
      sessionEntry(b, scenario),
    ]),
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
      return `${parseSessionEntry(x.variant).scenario} ×${fmt(x.ratio.reqPerSec, 2)} bare req/s, ${fmt(x.median.roundTripsPerReq, 2)} round trips/req (${ops})`;
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
  const summaries = summarize(runs, SESSION_ENTRIES, referenceOf);
  const names: Column<VariantSummary>[] = [
    {
      header: "store",
      text: true,
      cell: (s) => {
        const { variant } = parseSessionEntry(s.variant);
        return `${SESSION_SCENARIO_SETUPS[variant].label} (\`${variant}\`)`;
      },
    },
    {
      header: "request",
      text: true,
      cell: (s) => {
        const { scenario } = parseSessionEntry(s.variant);
        const { method, path } = SCENARIO_REQUESTS[scenario];
        return `${scenario}: ${method} ${path}`;
      },
    },
  ];
  const table = mainTable(summaries, names, "bare", storeColumns(runs));
  const bad = runs.filter((r) => r.non2xx + r.errors + r.timeouts > 0 || r.requests === 0);
  const wrongOps = runs.filter((r) => opProblem(r) !== undefined);
  const problems = [
    ...bad.map(
      (r) =>
        `- ${r.variant} round ${r.round}: non-2xx ${r.non2xx}, socket errors ${r.errors}, timeouts ${r.timeouts} of ${r.requests} (must be 0)`,
    ),
    ...wrongOps.map((r) => `- ${r.variant} round ${r.round}: ${opProblem(r)}`),
    ...runProblems(runs, failures),
  ];
  const texts = reportTexts({
    heading: "Session store (paste into README.md)",
    title: `Session benchmark ${startedAt.toISOString()}`,
    intro: [],
    table: pasteBlock(
      env,
      startedAt,
      "one logged-in session, its cookie on every request: GET /api (an unmodified read) or POST /api (a write), each answering the 1024-byte JSON via res.json(); reference row: bare Express on the same request. " +
        "Round trips/req: commands the server's Redis client sent; store get / set / touch: express-session's calls of the store per request; " +
        "sent per call: measured on requests sent one at a time before the load",
      table,
    ),
    targets: targetLines(summaries, runs),
    comparisons: comparisonLines(runs, comparisonPairs()),
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
      config.sessionVariants
        .map(
          (v) =>
            `- \`${v}\` (peer-bench \`${SESSION_SCENARIO_SETUPS[v].peerBench}\`): ${SESSION_DESCRIPTIONS[v]}`,
        )
        .join("\n"),
      "Scenarios: `read` is GET /api, behind the session and a check that it has a user (401 otherwise), leaving the session unmodified; " +
        "`write` is POST /api, which increments `req.session.counter` (so express-session saves).",
    ],
    raw: rawTable(runs, [
      { header: "probe round trips/req", cell: (r) => fmt(r.probeRoundTripsPerReq, 2) },
    ]),
  });
  return {
    ...texts,
    json: { summaries },
    failed: failures.length > 0 || bad.length > 0 || wrongOps.length > 0,
  };
}
