// apicache 1.6 ships no types (and @types/apicache is not installed): the part the cache
// benchmark uses.
declare module "apicache" {
  interface ApiCache {
    /** A caching middleware; `duration` like "5 minutes" or ms. */
    middleware(duration?: string | number): import("express").RequestHandler;
    /** Global options (getter without an argument). */
    options(options?: Record<string, unknown>): unknown;
    /** Clears an entry, a group or (no argument) everything. */
    clear(target?: string): unknown;
  }
  const apicache: ApiCache;
  export default apicache;
}
