/**
 * The HTTP suites' tables: the main table (server CPU µs per request first, then its ratio to
 * the reference row, each round's ratio, req/s and latency), the block to paste into README.md
 * (the command line, the method in one paragraph, the table), and the table of every run.
 */
import { config } from "./config.js";
import { loadgenLine } from "./loadgen.js";
import { fmt, fmtInt, percent, type RunResult, type VariantSummary } from "./stats.js";
import type { BenchEnv } from "./suite.js";

/** A column after the standard ones. */
export interface Column<S> {
  header: string;
  /** Left-aligned (text); numbers are right-aligned. */
  text?: boolean;
  cell(row: S): string;
}

function table<S>(headers: readonly Column<S>[], rows: readonly S[]): string {
  return [
    `| ${headers.map((c) => c.header).join(" | ")} |`,
    `| ${headers.map((c) => (c.text ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((row) => `| ${headers.map((c) => c.cell(row)).join(" | ")} |`),
  ].join("\n");
}

/**
 * The main table: the entry's name columns, then server CPU µs/req, its ratio to the reference
 * (`×<referenceName>`, median of per-round ratios) and each round's ratio, req/s and its ratio,
 * p50 and p99 latency, Redis commands per request (INFO commandstats, what scripts run
 * included), then `extra`.
 */
export function mainTable(
  summaries: readonly VariantSummary[],
  names: readonly Column<VariantSummary>[],
  referenceName: string,
  extra: readonly Column<VariantSummary>[] = [],
): string {
  const x = `×${referenceName}`;
  const columns: Column<VariantSummary>[] = [
    ...names,
    { header: "server CPU µs/req", cell: (s) => fmt(s.median.cpuUsPerReq, 0) },
    { header: x, cell: (s) => fmt(s.ratio.cpuUsPerReq, 2) },
    {
      header: `per-round ${x}`,
      cell: (s) => s.cpuRatios.map((r) => fmt(r, 2)).join(" / ") || "n/a",
    },
    { header: "req/s", cell: (s) => fmtInt(s.median.reqPerSec) },
    { header: `req/s ${x}`, cell: (s) => fmt(s.ratio.reqPerSec, 2) },
    { header: "p50 ms", cell: (s) => fmt(s.median.p50Ms, 2) },
    { header: "p99 ms", cell: (s) => fmt(s.median.p99Ms, 2) },
    { header: "Redis cmds/req", cell: (s) => fmt(s.median.redisCmdsPerReq, 2) },
    ...extra,
  ];
  return table(columns, summaries);
}

/** How every HTTP run was measured, in one paragraph (`what`: the request and reference). */
export function methodLine(env: BenchEnv, what: string): string {
  return (
    `Load: ${loadgenLine()}, ${what}. ` +
    (env.pinning.startsWith("none")
      ? `NOT pinned: ${env.pinning}. `
      : "Server (Express 5, one process) pinned to CPU 0, load generator and redis-server to CPU 1. ") +
    `${config.rounds} interleaved round(s), each entry once per round in an order rotated by one slot ` +
    `per round, ${config.durationS} s measured after ${config.warmupS} s of warm-up; medians over rounds. ` +
    "Server CPU µs/req: the server process's user + system CPU time over the measured window / the requests it received; " +
    "ratios (×): median of the per-round ratios to the reference row of the same round. " +
    `Node ${env.node}, Redis ${env.redis}, ${env.cpus} × ${env.cpu}; load average ${env.loadAverage1m.toFixed(2)} at start; code ${env.git}.`
  );
}

/** The block to paste into README.md: the command line, the method, the table. */
export function pasteBlock(
  env: BenchEnv,
  startedAt: Date,
  what: string,
  mainTableText: string,
): string {
  return [
    `\`${config.commandLine}\` (${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC)`,
    "",
    methodLine(env, what),
    "",
    mainTableText,
  ].join("\n");
}

/** Every run, in the order they ran, with `extra` columns after the standard ones. */
export function rawTable<R extends RunResult>(
  runs: readonly R[],
  extra: readonly Column<R>[] = [],
): string {
  const columns: Column<R>[] = [
    { header: "round", cell: (r) => String(r.round) },
    { header: "order", cell: (r) => String(r.order) },
    { header: "entry", text: true, cell: (r) => r.variant },
    { header: "CPU µs/req", cell: (r) => fmt(r.cpuUsPerReq, 1) },
    { header: "req/s", cell: (r) => fmtInt(r.reqPerSec) },
    { header: "p50 ms", cell: (r) => fmt(r.p50Ms, 2) },
    { header: "p99 ms", cell: (r) => fmt(r.p99Ms, 2) },
    { header: "Redis cmds/req", cell: (r) => fmt(r.redisCmdsPerReq, 2) },
    { header: "round trips/req", cell: (r) => fmt(r.roundTripsPerReq, 2) },
    { header: "received", cell: (r) => String(r.served) },
    { header: "non-2xx", cell: (r) => String(r.non2xx) },
    { header: "errors", cell: (r) => String(r.errors + r.timeouts) },
    ...extra,
    {
      header: "other load on CPU 0 / CPU 1",
      cell: (r) => `${percent(r.otherLoadOnServerCore)} / ${percent(r.otherLoadOnLoadCore)}`,
    },
    { header: "noisy attempts thrown away", cell: (r) => String(r.retriedNoisy ?? 0) },
    { header: "ended", text: true, cell: (r) => r.at.slice(11, 19) },
  ];
  return table(columns, runs);
}
