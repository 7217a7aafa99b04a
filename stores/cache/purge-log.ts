/**
 * Which purges happened since a fill began. Every purge (local, or heard from another process)
 * gets the next sequence number, recorded per tag (bounded); a fill remembers the sequence
 * when it began and is not stored when one of its tags, or everything, was purged since.
 */
import { LRUCache } from "lru-cache";

/** See the module comment. */
export class PurgeLog {
  private sequence = 0;
  private all = 0;
  /** The newest purge whose tag record was evicted: fills older than it count as purged. */
  private forgotten = 0;
  private readonly byTag = new LRUCache<string, number>({
    max: 10_000,
    dispose: (seq) => {
      this.forgotten = Math.max(this.forgotten, seq);
    },
  });

  /** The current sequence, for a fill that begins now. */
  get now(): number {
    return this.sequence;
  }

  /** Records a purge of `tags`, or of everything. */
  record(tags: readonly string[] | "all"): void {
    this.sequence++;
    if (tags === "all") this.all = this.sequence;
    else for (const tag of tags) this.byTag.set(tag, this.sequence);
  }

  /** True when any of `tags`, or everything, was purged after `since`. */
  purgedSince(since: number, tags: readonly string[]): boolean {
    if (this.all > since || this.forgotten > since) return true;
    return tags.some((tag) => (this.byTag.get(tag) ?? 0) > since);
  }
}
