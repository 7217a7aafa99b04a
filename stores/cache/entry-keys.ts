/**
 * The Redis key an entry is stored under: `prefix{hash}`, the hash (SHA-256, base64url, 27
 * characters) covering the generation and every key part, so a key never carries user input
 * and one entry's keys share a hash tag. Key texts are remembered (bounded LRU), so a hit
 * hashes nothing.
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";

/** Key texts longer than this are hashed every time instead of being kept. */
const MAX_KEPT_KEY_TEXT = 1024;

/** See the module comment. */
export class EntryKeys {
  /** Key text → entry key (the generation is part of the text). */
  private readonly keys = new LRUCache<string, string>({
    max: 10_000,
    maxSize: 4_000_000,
    sizeCalculation: (key, text) => text.length + key.length,
  });

  constructor(private readonly prefix: string) {}

  /** The entry key of `parts` in `generation`. */
  keyFor(generation: number, parts: readonly unknown[]): string {
    const text = JSON.stringify([generation, parts]);
    let key = this.keys.get(text);
    if (key === undefined) {
      const hash = createHash("sha256").update(text).digest("base64url").slice(0, 27);
      key = `${this.prefix}{${hash}}`;
      if (text.length <= MAX_KEPT_KEY_TEXT) this.keys.set(text, key);
    }
    return key;
  }
}
