/**
 * The PINGs a degraded feature sends by itself (`pingOf`, `PING_EVERY_MS`), and `Pinger`,
 * `driver.ping()` for both client families: one PING at a time per client, shared by every
 * feature asking meanwhile, and on a Cluster the slot map asked for again (at most every
 * `REFRESH_EVERY_MS`) when a master does not answer.
 */

import type { RedisDriver } from "./driver.js";

/** See `BackendSwitchOptions.ping`. */
export type Ping = (() => Promise<unknown>) & {
  /** Subscribes to the client's `ready`; returns the unsubscribe. */
  onReady?: (listener: () => void) => () => void;
};

/**
 * The `ping` of a `BackendSwitch` over `driver` (`driver.ping()`: on a Cluster every master
 * must answer, as one node answering proves nothing of a dead shard), and its `ready`.
 */
export function pingOf(driver: RedisDriver | undefined): Ping | undefined {
  if (driver === undefined) return undefined;
  return Object.assign(() => driver.ping(), {
    onReady: (listener: () => void) => driver.on("ready", listener),
  });
}

/**
 * While degraded, the switch PINGs at most this often (or every `recheckMs` when shorter): a
 * PING costs no request anything, and a failover is seen a PING or two after the new master
 * answers instead of up to a whole `recheckMs` later.
 */
export const PING_EVERY_MS = 250;

/** A Cluster's slot map is asked for again at most this often by a failed PING. */
export const REFRESH_EVERY_MS = 250;

export class Pinger {
  private inFlight: Promise<void> | undefined;
  private refreshedAt = 0;

  /**
   * @param once PINGs the server (on a Cluster, every master of the slot map)
   * @param refresh asks a Cluster client for its slot map again
   */
  constructor(
    private readonly once: () => Promise<void>,
    private readonly refresh?: () => void,
  ) {}

  ping(): Promise<void> {
    this.inFlight ??= this.once()
      .catch((err: unknown) => {
        if (this.refresh !== undefined && Date.now() - this.refreshedAt >= REFRESH_EVERY_MS) {
          this.refreshedAt = Date.now();
          this.refresh();
        }
        throw err;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
