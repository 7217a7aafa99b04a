/**
 * The benchmark's settings, from the environment (see bench/README.md).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isVariant, VARIANTS, type Variant } from "./variants.js";

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** autocannon's entry point, run as a separate process. */
export const AUTOCANNON = join(ROOT, "node_modules", "autocannon", "autocannon.js");

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

function envVariants(): Variant[] {
  const raw = process.env.BENCH_VARIANTS;
  if (raw === undefined || raw.trim() === "") return [...VARIANTS];
  const names = raw.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !isVariant(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_VARIANTS: unknown ${unknown.join(", ")} (known: ${VARIANTS.join(", ")})`,
    );
  const chosen = new Set<Variant>(["bare", ...(names as Variant[])]);
  return VARIANTS.filter((v) => chosen.has(v));
}

/** The run's settings. */
export const config = {
  durationS: envInt("BENCH_DURATION", 5, 1, 600),
  rounds: envInt("BENCH_ROUNDS", 5, 1, 100),
  warmupS: envInt("BENCH_WARMUP", 1, 0, 60),
  connections: envInt("BENCH_CONNECTIONS", 50, 1, 1000),
  variants: envVariants(),
  pin: process.env.BENCH_PIN !== "0",
};

export const SERVER_READY_TIMEOUT_MS = 30_000;
export const HTTP_TIMEOUT_MS = 5_000;
export const STOP_TIMEOUT_MS = 3_000;
