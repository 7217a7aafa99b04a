/**
 * Key building, in one place for every feature: `prefix` + `{tag}` + `:suffix`.
 *
 * The hash tag is the user-supplied part (an IP, an account id…). Everything a script touches
 * for one user key shares that tag, so it lands in one Cluster slot. The user part never
 * reaches Redis raw: it is percent-escaped so that `{`, `}`, glob characters, spaces and
 * CR/LF cannot change the slot or match a pattern, and hashed when long, so no input can
 * grow a key past `MAX_TAG_LENGTH` characters.
 */
import { createHash } from "node:crypto";
import { InvalidOptionError } from "./errors.js";
import { show } from "./options.js";

/** Longest escaped user part kept readable; longer parts are replaced by their hash. */
export const MAX_TAG_LENGTH = 128;

/** Longest `prefix` a feature accepts. */
export const MAX_PREFIX_LENGTH = 64;

/** Characters that pass through unescaped. Everything else becomes `%XX` (UTF-8 bytes). */
const SAFE = /^[A-Za-z0-9._:@-]*$/;

/** Escapes (or hashes, past `MAX_TAG_LENGTH`) a user-supplied key part. */
export function keyPart(input: string): string {
  if (input.length === 0) return "~"; // `{}` would disable the hash tag; `~` never comes from escaping
  if (input.length <= MAX_TAG_LENGTH && SAFE.test(input)) return input;
  if (input.length <= MAX_TAG_LENGTH) {
    const escaped = percentEscape(input);
    if (escaped !== undefined && escaped.length <= MAX_TAG_LENGTH) return escaped;
  }
  // UTF-16 bytes: lossless, so strings with lone surrogates still hash apart.
  return `#${createHash("sha256").update(input, "utf16le").digest("base64url")}`;
}

function percentEscape(input: string): string | undefined {
  try {
    return encodeURIComponent(input).replace(
      /[!'()*~]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  } catch {
    return undefined; // lone surrogate: hash instead
  }
}

/** `prefix{escaped user part}`: the hash-tagged base every key of one user key starts with. */
export function taggedKey(prefix: string, userKey: string): string {
  return `${prefix}{${keyPart(userKey)}}`;
}

/**
 * Validates a developer-supplied key prefix: a string of at most `MAX_PREFIX_LENGTH`
 * characters without `{`, `}` or whitespace (a brace would move the hash tag).
 */
export function parsePrefix(scope: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value.length > MAX_PREFIX_LENGTH || /[{}\s*?[\]]/.test(value)) {
    throw new InvalidOptionError(
      `${scope}: prefix must be a string of at most ${MAX_PREFIX_LENGTH} characters without braces, glob characters or whitespace (got ${show(value)})`,
      "prefix",
    );
  }
  return value;
}
