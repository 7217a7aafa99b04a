/**
 * The load generator: wrk (Debian package `wrk`), one thread and `config.connections`
 * connections, pinned to CPU 1 with redis-server, as ../shared/peer-bench runs it. autocannon
 * (a devDependency) only when wrk is not on PATH, or when `BENCH_LOADGEN=autocannon` asks for
 * it; the runner and every report say which one ran.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AUTOCANNON, config, ROOT } from "./config.js";
import { spawnTracked, stopChild, waitExit } from "./processes.js";

/** One load run's figures, whichever tool made them. */
export interface LoadResult {
  /** Responses received. */
  requests: number;
  reqPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Responses with a status ≥ 400 (wrk) or outside 2xx (autocannon). */
  non2xx: number;
  /** Socket errors (connect, read, write). */
  errors: number;
  timeouts: number;
  /** The load generator's own CPU time (user + system), µs, when known (wrk under /usr/bin/time). */
  cpuUs?: number;
}

/** What every request of a run sends besides its path (default: GET, no headers). */
export interface LoadRequest {
  method?: "GET" | "POST";
  /** Header name → value, sent on every request (e.g. a session cookie). */
  headers?: Record<string, string>;
}

function which(command: string): string | undefined {
  const found = spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** The load generator this run uses, its version, and why, when it is the fallback. */
export const LOADGEN = ((): { tool: "wrk" | "autocannon"; version: string; note?: string } => {
  const asked = process.env.BENCH_LOADGEN ?? "";
  if (asked !== "" && asked !== "wrk" && asked !== "autocannon")
    throw new Error(`BENCH_LOADGEN must be wrk or autocannon (got ${JSON.stringify(asked)})`);
  const wrk = which("wrk");
  if (asked !== "autocannon" && wrk !== undefined) {
    const banner = spawnSync(wrk, ["-v"], { encoding: "utf8" });
    const version = /wrk\s+(\S+)/.exec(`${banner.stdout}${banner.stderr}`)?.[1] ?? "unknown";
    return { tool: "wrk", version };
  }
  if (asked === "wrk") throw new Error("BENCH_LOADGEN=wrk but wrk is not on PATH");
  if (!existsSync(AUTOCANNON))
    throw new Error(
      `neither wrk (apt-get install wrk) nor autocannon (${AUTOCANNON}) is installed`,
    );
  return {
    tool: "autocannon",
    version: "9",
    note:
      asked === "autocannon"
        ? "autocannon, as BENCH_LOADGEN asks"
        : "FALLBACK: wrk is not on PATH (Debian: apt-get install wrk), so autocannon generates the load: it costs more CPU on CPU 1 and its numbers do not compare with ../shared/peer-bench's",
  };
})();

/** GNU time, to learn wrk's own CPU time (Debian package `time`); undefined when absent. */
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** The load generator as the reports name it. */
export function loadgenLine(): string {
  if (LOADGEN.tool === "wrk") return `wrk ${LOADGEN.version} -t1 -c${config.connections}`;
  const why =
    process.env.BENCH_LOADGEN === "autocannon"
      ? "BENCH_LOADGEN=autocannon"
      : "FALLBACK, wrk not found: not comparable with ../shared/peer-bench";
  return `autocannon -c${config.connections} (${why})`;
}

/** Runs `command args` (pinned to CPU 1) and returns its output; throws on failure or timeout. */
async function runTool(
  command: string,
  args: string[],
  seconds: number,
  env?: Record<string, string>,
): Promise<{ stdout: string; stderr: string }> {
  const child = spawnTracked(1, command, args, env);
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
    throw new Error(`${LOADGEN.tool} did not finish within ${seconds + 30} s`);
  }
  if (child.exitCode !== 0)
    throw new Error(
      `${LOADGEN.tool} exited ${child.exitCode ?? child.signalCode}: ${stderr.trim()}`,
    );
  return { stdout, stderr };
}

async function wrk(url: string, seconds: number, request: LoadRequest): Promise<LoadResult> {
  const args = [
    "-t1",
    `-c${config.connections}`,
    `-d${seconds}s`,
    "-s",
    join(ROOT, "bench", "wrk-report.lua"),
    ...Object.entries(request.headers ?? {}).flatMap(([name, value]) => [
      "-H",
      `${name}: ${value}`,
    ]),
    url,
  ];
  const env = { BENCH_WRK_METHOD: request.method ?? "GET" };
  const { stdout, stderr } =
    TIME === undefined
      ? await runTool("wrk", args, seconds, env)
      : await runTool(TIME, ["-f", "BENCH-TIME %U %S", "wrk", ...args], seconds, env);
  const line = /BENCH-WRK (\{.*\})/.exec(stdout)?.[1];
  const time = /BENCH-TIME ([\d.]+) ([\d.]+)/.exec(stderr);
  if (line === undefined) throw new Error(`wrk printed no BENCH-WRK line: ${stdout.slice(0, 500)}`);
  const w = JSON.parse(line) as Record<string, number>;
  const n = (key: string) => w[key] ?? Number.NaN;
  return {
    requests: n("requests"),
    reqPerSec: n("requests") / (n("durationUs") / 1e6),
    p50Ms: n("p50Us") / 1000,
    p90Ms: n("p90Us") / 1000,
    p99Ms: n("p99Us") / 1000,
    non2xx: n("status"),
    errors: n("connect") + n("read") + n("write"),
    timeouts: n("timeout"),
    ...(time === null ? {} : { cpuUs: (Number(time[1]) + Number(time[2])) * 1e6 }),
  };
}

/** The parts of autocannon's --json result used here. */
interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { p50: number; p90: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

async function autocannon(url: string, seconds: number, request: LoadRequest): Promise<LoadResult> {
  const args = [
    AUTOCANNON,
    "-c",
    String(config.connections),
    "-d",
    String(seconds),
    "-n",
    "-j",
    ...(request.method === undefined ? [] : ["-m", request.method]),
    ...Object.entries(request.headers ?? {}).flatMap(([name, value]) => ["-H", `${name}:${value}`]),
    url,
  ];
  const { stdout } = await runTool(process.execPath, args, seconds);
  let a: AutocannonJson;
  try {
    a = JSON.parse(stdout) as AutocannonJson;
  } catch {
    throw new Error(`autocannon printed no JSON: ${stdout.slice(0, 500)}`);
  }
  return {
    requests: a.requests.total,
    reqPerSec: a.requests.average,
    p50Ms: a.latency.p50,
    p90Ms: a.latency.p90,
    p99Ms: a.latency.p99,
    non2xx: a.non2xx,
    errors: a.errors,
    timeouts: a.timeouts,
  };
}

/** Loads `path` on the server at `port` for `seconds` with the chosen tool. */
export function runLoad(
  port: number,
  seconds: number,
  path = "/api",
  request: LoadRequest = {},
): Promise<LoadResult> {
  const url = `http://127.0.0.1:${port}${path}`;
  return LOADGEN.tool === "wrk" ? wrk(url, seconds, request) : autocannon(url, seconds, request);
}
