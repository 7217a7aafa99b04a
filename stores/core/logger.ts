/**
 * The logging hook every feature uses, and coded warnings that are logged once per instance.
 */

/** A pino-compatible logger: any object with `info`, `warn` and `error` methods. */
export interface Logger {
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

/** The default logger: the console. Features log transitions and misuse once, never per request. */
export const consoleLogger: Logger = {
  info: (message, ...rest) => console.info(message, ...rest),
  warn: (message, ...rest) => console.warn(message, ...rest),
  error: (message, ...rest) => console.error(message, ...rest),
};

/**
 * Coded warnings of one feature instance (one `rateLimit()`, one `cacheResponse()`…): each code
 * is logged once per instance, through that instance's logger, so a quiet logger on one instance
 * never silences another. Each code is documented in the README under "Warning and error codes".
 */
export class Warnings {
  private readonly seen = new Set<string>();

  constructor(readonly logger: Logger) {}

  /** Logs `[express-redis-kit] CODE: message` the first time this instance meets `code`. */
  once(code: string, message: string): void {
    if (this.seen.has(code)) return;
    this.seen.add(code);
    this.logger.warn(`[express-redis-kit] ${code}: ${message}`);
  }
}
