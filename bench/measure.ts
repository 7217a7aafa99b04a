/**
 * What one run measures: load (autocannon), the server's CPU time, and Redis command counts.
 */
import type { Redis } from "ioredis";
import { AUTOCANNON, config, HTTP_TIMEOUT_MS } from "./config.js";
import { spawnTracked, stopChild, waitExit } from "./processes.js";

/** The server's CPU time and responses served, from GET /__cpu. */
export interface CpuSample {
  user: number;
  system: number;
  served: number;
}

/** Reads the server's CPU sample. */
export async function readCpu(port: number): Promise<CpuSample> {
  const response = await fetch(`http://127.0.0.1:${port}/__cpu`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`GET /__cpu answered ${response.status}`);
  return (await response.json()) as CpuSample;
}

/** The parts of autocannon's --json result used here. */
export interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Runs autocannon against the server for `seconds` and returns its JSON result. */
export async function autocannon(port: number, seconds: number): Promise<AutocannonResult> {
  const child = spawnTracked(1, process.execPath, [
    AUTOCANNON,
    "-c",
    String(config.connections),
    "-d",
    String(seconds),
    "-n",
    "-j",
    `http://127.0.0.1:${port}/api`,
  ]);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString();
  });
  const exited = await waitExit(child, (seconds + 30) * 1000);
  if (!exited) {
    await stopChild(child);
    throw new Error(`autocannon did not finish within ${seconds + 30} s`);
  }
  if (child.exitCode !== 0)
    throw new Error(`autocannon exited ${child.exitCode ?? child.signalCode}: ${stderr.trim()}`);
  try {
    return JSON.parse(stdout) as AutocannonResult;
  } catch {
    throw new Error(`autocannon printed no JSON: ${stdout.slice(0, 500)} ${stderr.slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis command counts.

/** Script commands, counted as script calls. */
export const SCRIPT_COMMANDS = new Set([
  "eval",
  "evalsha",
  "eval_ro",
  "evalsha_ro",
  "fcall",
  "fcall_ro",
]);
/** Commands the runner itself sends, not counted. */
const OWN_COMMANDS = new Set(["info", "flushall"]);

/** Calls per command from INFO commandstats. */
export async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const text = await admin.info("commandstats");
  const stats = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match !== null) stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

/** Calls made between two samples, less the runner's own commands. */
export function statDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    if (OWN_COMMANDS.has(name)) continue;
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
}
