/**
 * Small validators used by every `parseXOptions()` step. Each throws `InvalidOptionError`
 * with a message naming the factory, the option and the offending value.
 */

import type { RedisDriver } from "./driver.js";
import { driverOf } from "./drivers.js";
import { InvalidOptionError } from "./errors.js";
import { peerHint } from "./peer-names.js";

/** Renders a rejected value for an error message without dumping huge strings. */
export function show(value: unknown): string {
  if (typeof value === "string") {
    const safe = redact(value);
    return JSON.stringify(safe.length > 40 ? `${safe.slice(0, 40)}…` : safe);
  }
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 60)}…` : text;
  } catch {
    return String(value);
  }
}

/** Hides the credentials of a URL (`scheme://user:password@host`) so errors never carry them. */
function redact(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, "$1***@");
}

/** Throws an `InvalidOptionError` for `scope`'s option `name`. */
export function fail(scope: string, name: string, expected: string, value: unknown): never {
  throw new InvalidOptionError(`${scope}: ${name} must be ${expected} (got ${show(value)})`, name);
}

/** A positive safe integer (or `undefined` → `fallback`). */
export function positiveInt(scope: string, name: string, value: unknown, fallback?: number) {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    fail(scope, name, "a positive integer", value);
  }
  return value;
}

/** A non-negative safe integer (or `undefined` → `fallback`). */
export function nonNegativeInt(scope: string, name: string, value: unknown, fallback: number) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(scope, name, "a non-negative integer", value);
  }
  return value;
}

/** One of `choices` (or `undefined` → `fallback`). Suggests the closest choice. */
export function oneOf<T extends string | boolean>(
  scope: string,
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if ((choices as readonly unknown[]).includes(value)) return value as T;
  const list = choices.map((c) => JSON.stringify(c)).join(", ");
  const hint = typeof value === "string" ? didYouMean(value, choices) : "";
  fail(scope, name, `one of ${list}${hint}`, value);
}

/** A function or `undefined`. */
export function optionalFunction<F>(scope: string, name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "function") fail(scope, name, "a function", value);
  return value as F;
}

/**
 * The driver of an accepted Redis client (see `RedisClient`), or `undefined` (the memory
 * backend). Throws `InvalidOptionError` naming the option for anything else.
 */
export function optionalRedis(
  scope: string,
  name: string,
  value: unknown,
): RedisDriver | undefined {
  if (value === undefined) return undefined;
  return driverOf(value, scope, name);
}

/** A boolean (or `undefined` → `fallback`). */
export function bool(scope: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") fail(scope, name, "true or false", value);
  return value;
}

/** Rejects keys of `options` that are not in `known`, suggesting the closest known name. */
export function rejectUnknown(scope: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError(
        `${scope}: unknown option ${JSON.stringify(key)}${peerHint(key, known) ?? didYouMean(key, known)}`,
        key,
      );
    }
  }
}

function didYouMean(value: string, choices: readonly unknown[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const choice of choices) {
    if (typeof choice !== "string") continue;
    const d = distance(value.toLowerCase(), choice.toLowerCase());
    if (d < bestDistance) {
      best = choice;
      bestDistance = d;
    }
  }
  return best === undefined ? "" : `; did you mean ${JSON.stringify(best)}?`;
}

/** Levenshtein distance, for "did you mean" hints on short option names. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
