/**
 * Targeted cache-control fields (RFC 9213, `CDN-Cache-Control` and the like): a Structured
 * Field Dictionary (RFC 8941 / RFC 9651), parsed with the `structured-headers` library. A value
 * that does not parse, or whose known directives have arguments of the wrong type, is ignored
 * as a whole: the cache falls back to `Cache-Control`, as if the field were absent (§2.1).
 */
import { parseDictionary } from "structured-headers";
import { type Directives, listMembers } from "./cache-policy.js";

/** Directives whose argument is delta-seconds: an Integer ≥ 0 in a targeted field. */
const SECONDS = new Set(["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"]);
/** Directives without an argument: Boolean true (a bare key) in a targeted field. */
const FLAGS = new Set([
  "no-store",
  "must-revalidate",
  "proxy-revalidate",
  "public",
  "immutable",
  "no-transform",
  "must-understand",
]);
/** Directives that take true, or a String of field names. */
const FLAG_OR_FIELDS = new Set(["no-cache", "private"]);

/**
 * The directives of a targeted field's value, or `undefined` when it is absent, empty,
 * not a valid Dictionary, or has a known directive with an argument of the wrong type.
 */
export function targetedDirectives(value: string | undefined): Directives | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  let dictionary: ReturnType<typeof parseDictionary>;
  try {
    dictionary = parseDictionary(value);
  } catch {
    return undefined;
  }
  const directives: Directives = new Map();
  for (const [name, [item]] of dictionary) {
    if (SECONDS.has(name)) {
      // Decimals parse as numbers too: an Integer has no "." in the value as sent.
      if (typeof item !== "number" || !Number.isInteger(item) || item < 0) return undefined;
      if (decimalIn(value, name)) return undefined;
      directives.set(name, String(item));
    } else if (FLAGS.has(name)) {
      if (item !== true) return undefined;
      directives.set(name, true);
    } else if (FLAG_OR_FIELDS.has(name)) {
      if (item === true) directives.set(name, true);
      else if (typeof item === "string") directives.set(name, item);
      else return undefined;
    } else if (item === true) {
      directives.set(name, true); // an extension directive: kept, unused
    } else if (typeof item === "number" || typeof item === "string") {
      directives.set(name, String(item));
    }
  }
  return directives;
}

/**
 * Whether the member `name` of a (valid) Dictionary value has a Decimal value (`name=1.5`):
 * the last member of that name (the one the parser kept), its value's own text only.
 */
function decimalIn(value: string, name: string): boolean {
  let text: string | undefined;
  for (const member of listMembers(value)) {
    const eq = member.indexOf("=");
    if (eq === -1 || member.slice(0, eq).trim() !== name) continue;
    text = member.slice(eq + 1).split(";")[0];
  }
  return text?.includes(".") === true;
}
