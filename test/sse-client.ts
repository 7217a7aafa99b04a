/** A Server-Sent Events client for tests, over a raw HTTP request. */
import { once } from "node:events";
import http from "node:http";

/** Opens an SSE stream: the response, the raw text so far, and a wait for some text to appear. */
export async function openStream(url: string, headers: Record<string, string> = {}) {
  const req = http.get(url, { headers });
  req.on("error", () => {}); // destroyed by the test
  const [res] = (await once(req, "response")) as [http.IncomingMessage];
  res.on("error", () => {}); // "aborted" when the test destroys it
  let text = "";
  let cursor = 0; // each wait looks past the previous match: messages come in order
  const waiters: { needle: string; resolve: () => void }[] = [];
  const found = (needle: string) => {
    const at = text.indexOf(needle, cursor);
    if (at === -1) return false;
    cursor = at + needle.length;
    return true;
  };
  res.setEncoding("utf8");
  res.on("data", (chunk: string) => {
    text += chunk;
    const waiter = waiters[0];
    if (waiter !== undefined && found(waiter.needle)) {
      waiters.shift();
      waiter.resolve();
    }
  });
  const ended = new Promise<void>((resolve) => res.once("close", resolve));
  return {
    res,
    req,
    ended,
    text: () => text,
    /** Resolves when `needle` appears after the previous match (one wait at a time). */
    until: (needle: string) =>
      found(needle)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ needle, resolve })),
  };
}
