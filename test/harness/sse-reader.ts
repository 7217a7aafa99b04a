/**
 * A Server-Sent Events client for the chaos load: reads an `sse()` stream over HTTP as a browser's
 * `EventSource` would, hands each event's parsed `data` to `onEvent`, and opens the stream again
 * (after the server's `retry:`) whenever it ends. The chaos figures for pub/sub are what this
 * client received, so they cover the whole path: Redis, the process's subscription, `sse()`'s
 * framing and the HTTP stream.
 */

export interface SseReader {
  /** Resolves once the first stream said it is subscribed (`: connected`). */
  readonly ready: Promise<void>;
  /** Streams opened after the first one (the server or the network ended one). */
  readonly reconnects: number;
  close(): void;
}

/** Reads `url` until `close()`; `onEvent` gets every event's `data`, parsed as JSON. */
export function readSse(url: string, onEvent: (data: unknown) => void): SseReader {
  const abort = new AbortController();
  let reconnects = 0;
  let retryMs = 1000;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  /** Handles one event block (the lines between blank lines). */
  const block = (text: string) => {
    const data: string[] = [];
    for (const line of text.split("\n")) {
      if (line === ": connected") markReady();
      else if (line.startsWith("data: ")) data.push(line.slice(6));
      else if (line.startsWith("retry: ")) retryMs = Number(line.slice(7)) || retryMs;
    }
    if (data.length > 0) onEvent(JSON.parse(data.join("\n")));
  };

  const run = async () => {
    for (let first = true; !abort.signal.aborted; first = false) {
      if (!first) reconnects++;
      try {
        const res = await fetch(url, { signal: abort.signal });
        if (res.body === null) throw new Error(`${url} answered ${res.status} with no body`);
        const decoder = new TextDecoder();
        let buffered = "";
        for await (const chunk of res.body) {
          buffered += decoder.decode(chunk as Uint8Array, { stream: true });
          for (let end = buffered.indexOf("\n\n"); end >= 0; end = buffered.indexOf("\n\n")) {
            block(buffered.slice(0, end));
            buffered = buffered.slice(end + 2);
          }
        }
      } catch {
        // Ended by the server, the network or close(): open it again unless closed.
      }
      if (!abort.signal.aborted) await pause(retryMs, abort.signal);
    }
  };
  void run();

  return {
    ready,
    get reconnects() {
      return reconnects;
    },
    close: () => abort.abort(),
  };
}

/** Waits `ms`, or less when `signal` aborts (no timer is left behind). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
