/**
 * In-process coalescing: one "flight" per key being filled. The first request of a process
 * to miss a key starts it; later ones join and wait, each with its own deadline, and are
 * woken with the filler's entry (handed over in memory) or with nothing (look it up) when
 * the fill lands here or another process reports it.
 */
import type { Lookup } from "./types.js";

interface Flight {
  /** This process fills (it holds the lock, or Redis is failing). */
  local: boolean;
  waiters: Set<(found?: Lookup) => void>;
}

/** See the module comment. */
export class Flights {
  private readonly flights = new Map<string, Flight>();

  constructor(private readonly waitMs: number) {}

  /** Starts a flight for `key`; false when one is already under way. */
  start(key: string): boolean {
    if (this.flights.has(key)) return false;
    this.flights.set(key, { local: true, waiters: new Set() });
    return true;
  }

  /**
   * Another process fills `key`: the flight waits for its message. Without waiters (the
   * caller will not wait) it is forgotten at once rather than kept until a message arrives.
   */
  remote(key: string, willWait: boolean): void {
    const flight = this.flights.get(key);
    if (flight === undefined) return;
    flight.local = false;
    if (!willWait && flight.waiters.size === 0) this.flights.delete(key);
  }

  /** Whether `key` has a flight to wait for. */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** Waits (at most `waitMs`) for `key`'s flight to land; resolves with what it hands over. */
  wait(key: string): Promise<Lookup | undefined> {
    const flight = this.flights.get(key);
    if (flight === undefined) return Promise.resolve(undefined);
    return new Promise<Lookup | undefined>((resolve) => {
      const done = (found?: Lookup, timedOut = false) => {
        clearTimeout(timer);
        flight.waiters.delete(done);
        // A filler that has not landed within the wait (a remote one that never reported, or
        // a local one that is lost): forget the flight, so the next request claims anew
        // instead of waiting on it too. A late landing then finds no flight, which is harmless.
        if ((timedOut || !flight.local) && this.flights.get(key) === flight) {
          if (timedOut || flight.waiters.size === 0) this.flights.delete(key);
        }
        resolve(found);
      };
      const timer = setTimeout(() => done(undefined, true), this.waitMs);
      flight.waiters.add(done);
    });
  }

  /** Ends `key`'s flight, waking its waiters with `handover` (the filler's entry, if any). */
  land(key: string, handover?: Lookup): void {
    const flight = this.flights.get(key);
    if (flight === undefined) return;
    this.flights.delete(key);
    for (const wake of [...flight.waiters]) wake(handover);
  }
}
