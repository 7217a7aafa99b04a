/**
 * How `UserSessionStore.touch` knows what the read that returned a session already did: the
 * expiry that read set travels on the session object itself, as private fields.
 */

/** Lets a subclass add private fields to any object (its constructor returns the object). */
class Stamp {
  constructor(target: object) {
    // biome-ignore lint/correctness/noConstructorReturn: that is the point (see ReadExpiry)
    return target;
  }
}

/**
 * The expiry (ms since the epoch, at the earliest) a store's read set, kept on the session
 * object that read returned (and on the one express-session builds from it) as private fields:
 * invisible to JSON, `for…in`, copies and deep equality, and, unlike a WeakMap entry, no work
 * for the garbage collector (about a microsecond a request).
 */
export class ReadExpiry extends Stamp {
  #store: object;
  #at: number;

  private constructor(target: object, store: object, at: number) {
    super(target);
    this.#store = store;
    this.#at = at;
  }

  static set(target: object, store: object, at: number): void {
    if (#at in target) {
      target.#store = store;
      target.#at = at;
      return;
    }
    try {
      new ReadExpiry(target, store, at);
    } catch {
      // An object that takes no private field (a future frozen one): its touch is not free.
    }
  }

  static get(target: unknown, store: object): number | undefined {
    if (typeof target !== "object" || target === null || !(#at in target)) return undefined;
    return target.#store === store ? target.#at : undefined;
  }
}
