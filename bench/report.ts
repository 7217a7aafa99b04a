/**
 * The skeleton every benchmark's report shares: the printed summary and the markdown results
 * file, section by section. What goes in each section is the benchmark's own.
 */
import type { BenchEnv } from "./suite.js";

/** One "Redis calls by command" section: its heading and its lines. */
export interface MixSection {
  heading: string;
  text: string;
  /** Whether the printed summary shows it too (after the comparisons). */
  printed?: boolean;
}

/** A benchmark's report, part by part; the optional parts are left out when absent. */
export interface ReportParts {
  /** The printed summary's heading (absent: the summary starts with the table). */
  heading?: string;
  /** The markdown's first line, after `# `. */
  title: string;
  /** The markdown's paragraphs between title and table: what ran, where, how to read it. */
  intro: readonly string[];
  table: string;
  /** The benchmark's targets, one line each, with their verdicts. */
  targets?: readonly string[];
  /** The key comparisons' lines, joined. */
  comparisons: string;
  /** More tables for the results file, after the comparisons, one section each. */
  details?: readonly { heading: string; text: string }[];
  /** One line per problem. */
  problems: readonly string[];
  /** What the report says when there is no problem. */
  noProblems: string;
  /** What the printed summary says when there is none, if not `noProblems`. */
  printedNoProblems?: string;
  /** The "Outside load" text. */
  noise?: string;
  /** Redis calls by command, one section each. */
  mixes: readonly MixSection[];
  /** The "Variants" section's paragraphs (the list first). */
  variants: readonly string[];
  /** The table of every run. */
  raw: string;
}

/**
 * The machine and code measured, as the reports' first paragraph ends: Node, Redis, CPUs,
 * pinning, the load average when `npm run bench` started, and the commit.
 */
export function machineLine(env: BenchEnv): string {
  return (
    `Node ${env.node}, Redis ${env.redis}, ${env.cpus} × ${env.cpu}. Pinning: ${env.pinning}. ` +
    `Load average (1 min) when \`npm run bench\` started: ${env.loadAverage1m.toFixed(2)}. Code: ${env.git}.`
  );
}

/**
 * The printed summary (table, targets, comparisons, printed command mixes, problems, outside
 * load) and the markdown results file (title, intro, table, then a `##` section each: targets,
 * comparisons, problems, outside load, command mixes, variants, raw runs).
 */
export function reportTexts(parts: ReportParts): { printed: string; markdown: string } {
  const { targets, problems, noise } = parts;
  const problemText = problems.length > 0 ? problems.join("\n") : parts.noProblems;
  const printed = [
    parts.heading === undefined ? `\n${parts.table}\n` : `\n${parts.heading}:\n\n${parts.table}\n`,
    ...(targets === undefined ? [] : [`Targets:\n${targets.join("\n")}\n`]),
    `Key comparisons (median of per-round ratios):\n${parts.comparisons}\n`,
    ...parts.mixes.filter((m) => m.printed).map((m) => `${m.heading}:\n${m.text}\n`),
    problems.length > 0
      ? `Problems:\n${problemText}\n`
      : `${parts.printedNoProblems ?? parts.noProblems}\n`,
    ...(noise === undefined ? [] : [`Outside load: ${noise}\n`]),
  ].join("\n");
  const section = (heading: string, text: string) => [`## ${heading}`, "", text, ""];
  const markdown = [
    `# ${parts.title}`,
    "",
    ...parts.intro.flatMap((paragraph) => [paragraph, ""]),
    parts.table,
    "",
    ...(targets === undefined ? [] : section("Targets", targets.join("\n"))),
    ...section("Key comparisons (median of per-round ratios)", parts.comparisons),
    ...(parts.details ?? []).flatMap((d) => section(d.heading, d.text)),
    ...section("Problems", problemText),
    ...(noise === undefined ? [] : section("Outside load", noise)),
    ...parts.mixes.flatMap((m) => section(m.heading, m.text)),
    ...section("Variants", parts.variants.join("\n\n")),
    ...section("Raw runs", parts.raw),
  ].join("\n");
  return { printed, markdown };
}
