/**
 * The benchmark's settings, from the command line and the environment (see bench/README.md).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CACHE_HANDLERS,
  CACHE_VARIANTS,
  type CacheHandler,
  type CacheVariant,
} from "./cache-variants.js";
import {
  LOCK_HTTP_VARIANTS,
  LOCK_VARIANTS,
  type LockHttpVariant,
  type LockVariant,
} from "./lock-variants.js";
import {
  SESSION_SCENARIOS,
  SESSION_VARIANTS,
  type SessionScenario,
  type SessionVariant,
} from "./session-variants.js";
import { VARIANTS, type Variant } from "./variants.js";

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** autocannon's entry point, run as a separate process. */
export const AUTOCANNON = join(ROOT, "node_modules", "autocannon", "autocannon.js");

/** The benchmarks `npm run bench` can run, in the order it runs them. */
export const SUITES = ["rate-limit", "cache", "lock", "session"] as const;
export type Suite = (typeof SUITES)[number];

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

function list(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** `--only <suite>` / `--only=<suite>` on the command line, else `BENCH_ONLY`. */
function onlyArgument(): string | undefined {
  const args = process.argv.slice(2);
  for (const [i, arg] of args.entries()) {
    if (arg === "--only") {
      const value = args[i + 1];
      if (value === undefined || value.startsWith("--")) throw new Error("--only needs a value");
      return value;
    }
    if (arg.startsWith("--only=")) return arg.slice("--only=".length);
    if (arg.startsWith("--")) throw new Error(`unknown argument ${arg} (known: --only <suite>)`);
  }
  return process.env.BENCH_ONLY;
}

function chosenSuites(): Suite[] {
  const names = list(onlyArgument());
  if (names === undefined) return [...SUITES];
  const aliases: Record<string, Suite> = {
    "rate-limit": "rate-limit",
    ratelimit: "rate-limit",
    "rate-limits": "rate-limit",
    cache: "cache",
    lock: "lock",
    locks: "lock",
    session: "session",
    sessions: "session",
  };
  const unknown = names.filter((n) => aliases[n] === undefined);
  if (unknown.length > 0)
    throw new Error(
      `--only / BENCH_ONLY: unknown ${unknown.join(", ")} (known: ${SUITES.join(", ")})`,
    );
  const chosen = new Set(names.map((n) => aliases[n]!));
  return SUITES.filter((s) => chosen.has(s));
}

/**
 * `BENCH_VARIANTS`: names from any benchmark (each benchmark's reference row, `bare` or the
 * lock workers' `floor`, is always added). A benchmark none of whose variants is named is
 * skipped.
 */
function chosenVariants(): {
  rateLimit: Variant[];
  cache: CacheVariant[];
  lockHttp: LockHttpVariant[];
  lock: LockVariant[];
  session: SessionVariant[];
} {
  const names = list(process.env.BENCH_VARIANTS);
  if (names === undefined)
    return {
      rateLimit: [...VARIANTS],
      cache: [...CACHE_VARIANTS],
      lockHttp: [...LOCK_HTTP_VARIANTS],
      lock: [...LOCK_VARIANTS],
      session: [...SESSION_VARIANTS],
    };
  const known = new Set<string>([
    ...VARIANTS,
    ...CACHE_VARIANTS,
    ...LOCK_HTTP_VARIANTS,
    ...LOCK_VARIANTS,
    ...SESSION_VARIANTS,
  ]);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_VARIANTS: unknown ${unknown.join(", ")} (rate limit: ${VARIANTS.join(", ")}; cache: ${CACHE_VARIANTS.join(", ")}; ` +
        `lock: ${[...new Set([...LOCK_HTTP_VARIANTS, ...LOCK_VARIANTS])].join(", ")}; session: ${SESSION_VARIANTS.join(", ")})`,
    );
  const named = new Set(names);
  const pick = <T extends string>(all: readonly T[], reference: T): T[] =>
    all.some((v) => v !== reference && named.has(v))
      ? all.filter((v) => v === reference || named.has(v))
      : [];
  return {
    rateLimit: pick(VARIANTS, "bare"),
    cache: pick(CACHE_VARIANTS, "bare"),
    lockHttp: pick(LOCK_HTTP_VARIANTS, "bare"),
    lock: pick(LOCK_VARIANTS, "floor"),
    session: pick(SESSION_VARIANTS, "bare"),
  };
}

function chosenHandlers(): CacheHandler[] {
  const names = list(process.env.BENCH_HANDLERS);
  if (names === undefined) return [...CACHE_HANDLERS];
  const unknown = names.filter((n) => !(CACHE_HANDLERS as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_HANDLERS: unknown ${unknown.join(", ")} (known: ${CACHE_HANDLERS.join(", ")})`,
    );
  return CACHE_HANDLERS.filter((h) => names.includes(h));
}

/** `BENCH_SCENARIOS`: the session benchmark's scenarios. */
function chosenScenarios(): SessionScenario[] {
  const names = list(process.env.BENCH_SCENARIOS);
  if (names === undefined) return [...SESSION_SCENARIOS];
  const unknown = names.filter((n) => !(SESSION_SCENARIOS as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_SCENARIOS: unknown ${unknown.join(", ")} (known: ${SESSION_SCENARIOS.join(", ")})`,
    );
  return SESSION_SCENARIOS.filter((s) => names.includes(s));
}

const variants = chosenVariants();

/**
 * The command line that reproduces this run: the `BENCH_*` settings given, `npm run bench` and
 * its arguments.
 */
function commandLine(): string {
  const settings = Object.keys(process.env)
    .filter((name) => name.startsWith("BENCH_") && process.env[name] !== "")
    .sort()
    .map((name) => `${name}=${process.env[name]}`);
  const args = process.argv.slice(2);
  return [...settings, "npm run bench", ...(args.length > 0 ? ["--", ...args] : [])].join(" ");
}

/** The run's settings. */
export const config = {
  /** Seconds of each measured load run. */
  durationS: envInt("BENCH_DURATION", 5, 1, 600),
  /** Interleaved rounds: every entry once per round, in an order rotated by one each round. */
  rounds: envInt("BENCH_ROUNDS", 3, 1, 100),
  /** Seconds of unrecorded load before each measured run (peer-bench: 2). */
  warmupS: envInt("BENCH_WARMUP", 2, 0, 60),
  connections: envInt("BENCH_CONNECTIONS", 50, 1, 1000),
  /** Times a run is run again when other processes used too much of a core (HTTP suites). */
  retries: envInt("BENCH_RETRIES", 1, 0, 5),
  /** The benchmarks to run (`--only`), less those `BENCH_VARIANTS` names no variant of. */
  suites: chosenSuites().filter(
    (s) =>
      ({
        "rate-limit": variants.rateLimit.length,
        cache: variants.cache.length,
        lock: variants.lock.length + variants.lockHttp.length,
        session: variants.session.length,
      })[s] > 0,
  ),
  /** Rate-limit variants. */
  variants: variants.rateLimit,
  /** Cache variants, each run on every handler of `cacheHandlers`. */
  cacheVariants: variants.cache,
  cacheHandlers: chosenHandlers(),
  /** Session variants, each run on every scenario of `sessionScenarios`. */
  sessionVariants: variants.session,
  sessionScenarios: chosenScenarios(),
  /** Lock benchmark, HTTP part: uncontended acquire + release as middleware. */
  lockHttpVariants: variants.lockHttp,
  /** Lock benchmark, worker part: sequential cycles and contended hand-offs. */
  lockVariants: variants.lock,
  /** Lock benchmark: measured sequential acquire+release iterations per run. */
  lockIterations: envInt("BENCH_LOCK_ITERATIONS", 2000, 10, 1_000_000),
  /** Lock benchmark: worker processes contending for the lock. */
  lockWaiters: envInt("BENCH_LOCK_WAITERS", 8, 2, 64),
  /** Lock benchmark: measured batches per run (each worker acquires once per batch). */
  lockBatches: envInt("BENCH_LOCK_BATCHES", 50, 1, 10_000),
  /** Lock benchmark: how long each holder holds the lock, ms. */
  lockHoldMs: envInt("BENCH_LOCK_HOLD_MS", 1, 0, 1000),
  pin: process.env.BENCH_PIN !== "0",
  /** How this run was started, for the reports. */
  commandLine: commandLine(),
};

export const SERVER_READY_TIMEOUT_MS = 30_000;
export const HTTP_TIMEOUT_MS = 5_000;
export const STOP_TIMEOUT_MS = 3_000;
