/**
 * The logging hook every feature uses, and coded warnings that are logged once per process.
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

const warned = new Set<string>();

/**
 * Logs a coded warning once per process and code (e.g. `ERK_XFF_IGNORED`). Each code is
 * documented in the README under "Warning and error codes".
 */
export function warnOnce(logger: Logger, code: string, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  logger.warn(`[express-redis-kit] ${code}: ${message}`);
}

/** Forgets which codes were logged (for tests). */
export function resetWarnings(): void {
  warned.clear();
}
