/**
 * A process's local queue of the callers waiting for one lock: in arrival order, only the first
 * tries; the others sleep until woken (a release heard, the one before them leaving).
 */

/** A caller waiting in this process; a wake before it sleeps is kept, not lost. */
export class Waiter {
  private resolve: (() => void) | undefined;
  private pending = false;

  wake(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    if (resolve) resolve();
    else this.pending = true;
  }

  /** Resolves after `ms`, or at the next `wake()` (at once if one came meanwhile). */
  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake(), Math.max(1, ms));
      this.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** The callers of this process waiting for one key, in arrival order: only the first tries. */
export interface Queue {
  waiters: Waiter[];
}

/** `me` leaves `queue` (of `key` in `queues`); when it was first, the next in line tries now. */
export function dequeue(queues: Map<string, Queue>, key: string, queue: Queue, me: Waiter): void {
  const i = queue.waiters.indexOf(me);
  if (i !== -1) queue.waiters.splice(i, 1);
  if (queue.waiters.length === 0) {
    if (queues.get(key) === queue) queues.delete(key);
  } else if (i === 0) {
    queue.waiters[0]?.wake();
  }
}
