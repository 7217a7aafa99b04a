/**
 * requireLock() over HTTP on memory, a standalone Redis and a Cluster: one winner and 409s
 * with Retry-After, FIFO with waitMs, client aborts, throwing handlers, locks lost mid-request.
 */
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import express from "express";
import request from "supertest";
import {
  ClientClosedError,
  createLockManager,
  LockLostError,
  LockNotAcquiredError,
  type RequireLockOptions,
  requireLock,
} from "../index.js";
import { clientFor, closeClients, quiet, testPrefix, wait } from "./helpers.js";

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await closeClients();
});

describe.each(["memory", "standalone", "cluster"] as const)("requireLock() on %s", (backend) => {
  const redis = clientFor(backend);
  const prefix = testPrefix(`${__filename}-${backend}`);
  let n = 0;

  /** An app with `POST /work/:id` behind requireLock, the handler given; returns its URL. */
  async function app(
    handler: express.RequestHandler,
    options: Partial<RequireLockOptions> = {},
    before: express.RequestHandler = (_req, _res, next) => next(),
  ) {
    const guard = requireLock({
      redis,
      prefix: `${prefix}${n++}:`,
      key: (req) => (req.params.id as string | undefined) ?? null,
      logger: quiet,
      ...options,
    });
    const a = express();
    a.post("/work/:id", before, guard, handler);
    a.use(
      (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).json({ error: err.message });
      },
    );
    const server = a.listen(0, "127.0.0.1");
    servers.push(server);
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    return { guard, url: `http://127.0.0.1:${port}`, port };
  }

  it("10 concurrent requests on one key: one 200 and nine 409s with Retry-After", async () => {
    // The holder answers once the nine others have been answered (or after 5 s, should a bug
    // let a second one in): "concurrent" however slow the machine is.
    let answered = 0;
    let open!: () => void;
    const othersDone = new Promise<void>((resolve) => {
      open = resolve;
    });
    setTimeout(open, 5000).unref();
    const { url } = await app((_req, res) => void othersDone.then(() => res.json({ ok: true })));
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        request(url)
          .post("/work/42")
          .then((r) => {
            if (++answered === 9) open();
            return r;
          }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) {
      expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(r.body).toMatchObject({
        error: "Conflict",
        retryAfter: Number(r.headers["retry-after"]),
      });
    }
    // Other keys are independent, and the lock is released after the response.
    expect((await request(url).post("/work/43")).status).toBe(200);
    expect((await request(url).post("/work/42")).status).toBe(200);
  });

  it("with waitMs, all requests succeed one at a time, in arrival order", async () => {
    const order: number[] = [];
    let running = 0;
    let overlap = false;
    const { url } = await app(
      (req, res) => {
        running++;
        if (running > 1) overlap = true;
        order.push(Number(req.headers["x-n"]));
        setTimeout(() => {
          running--;
          res.json({});
        }, 30);
      },
      { waitMs: 10_000 },
      (_req, _res, next) => {
        arrived?.();
        next(); // the guard starts acquiring synchronously from here
      },
    );
    let arrived: (() => void) | undefined;
    const pending = [];
    for (let i = 0; i < 8; i++) {
      const seen = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      // .then() sends now (supertest is lazy); the next request leaves once this one arrived.
      pending.push(
        request(url)
          .post("/work/7")
          .set("X-N", String(i))
          .then((r) => r),
      );
      await seen;
    }
    const results = await Promise.all(pending);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(overlap).toBe(false);
  });

  it("statusCode 423, handler with the LockNotAcquiredError, and key() returning null skips the lock", async () => {
    const { url } = await app((_req, res) => void setTimeout(() => res.json({}), 200), {
      statusCode: 423,
    });
    const [a, b] = await Promise.all([request(url).post("/work/1"), request(url).post("/work/1")]);
    expect([a.status, b.status].sort()).toEqual([200, 423]);
    expect([a, b].find((r) => r.status === 423)?.body).toMatchObject({ error: "Locked" });
    const seen: unknown[] = [];
    const custom = await app((_req, res) => void setTimeout(() => res.json({}), 200), {
      handler: (_req, res, _next, err) => {
        seen.push(err);
        res.status(429).json({ busy: err.resource, retryAfter: res.getHeader("Retry-After") });
      },
    });
    const [c, d] = await Promise.all([
      request(custom.url).post("/work/9"),
      request(custom.url).post("/work/9"),
    ]);
    expect([c.status, d.status].sort()).toEqual([200, 429]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(LockNotAcquiredError);
    expect((seen[0] as LockNotAcquiredError).resource).toBe("9");
    expect((seen[0] as LockNotAcquiredError).retryAfterMs).toBeGreaterThan(0);
    // Retry-After is set before the handler runs.
    const busy = [c, d].find((r) => r.status === 429)!;
    const seconds = Math.ceil((seen[0] as LockNotAcquiredError).retryAfterMs / 1000);
    expect(busy.body).toEqual({ busy: "9", retryAfter: String(seconds) });
    const skipping = await app((_req, res) => void setTimeout(() => res.json({}), 100), {
      key: () => null,
    });
    const both = await Promise.all([
      request(skipping.url).post("/work/1"),
      request(skipping.url).post("/work/1"),
    ]);
    expect(both.map((r) => r.status)).toEqual([200, 200]);
  });

  it("key() returning undefined is an error (500), never a request run without its lock", async () => {
    let ran = 0;
    const { url } = await app(
      (_req, res) => {
        ran++;
        res.json({ ok: true });
      },
      { key: ((req: express.Request) => req.get("x-resource")) as never },
    );
    const res = await request(url).post("/work/1");
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(
      /requireLock: key\(req, res\) must return a resource name, or null/,
    );
    expect(ran).toBe(0);
    expect((await request(url).post("/work/1").set("x-resource", "r")).status).toBe(200); // control
    expect(ran).toBe(1);
  });

  it("a handler that throws still releases", async () => {
    const { url } = await app(() => {
      throw new Error("boom");
    });
    expect((await request(url).post("/work/5")).status).toBe(500);
    expect((await request(url).post("/work/5")).status).toBe(500); // not 409: released
  });

  it("an aborted client aborts req.lock.signal, and the lock is kept until the handler ends", async () => {
    let reason: unknown;
    let finish!: () => void;
    const handlerEnded = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let calls = 0;
    const { url, port, guard } = await app((req, res) => {
      if (++calls > 1) return void res.json({ later: true }); // later requests answer at once
      req.lock!.signal.addEventListener("abort", () => {
        reason = req.lock!.signal.reason;
        // The handler keeps working a little, then ends its response.
        setTimeout(() => {
          res.json({});
          finish();
        }, 200);
      });
    });
    const socket = net.connect(port, "127.0.0.1");
    socket.write("POST /work/77 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    // Wait until the lock is held, then leave.
    for (let i = 0; i < 100 && guard.locks.stats().acquired === 0; i++) await wait(5);
    socket.destroy();
    await wait(50);
    expect(reason).toBeInstanceOf(ClientClosedError);
    expect((await request(url).post("/work/77")).status).toBe(409); // still held
    await handlerEnded;
    let after = await request(url).post("/work/77");
    for (let i = 0; i < 20 && after.status === 409; i++)
      after = await request(url).post("/work/77");
    expect(after.status).toBe(200);
  });

  it("a lock lost mid-request aborts the signal, is counted, and the middleware writes nothing", async () => {
    let reason: unknown;
    const { url, guard } = await app(
      (req, res) => {
        req.lock!.signal.addEventListener("abort", () => {
          reason = req.lock!.signal.reason;
        });
        setTimeout(() => res.status(202).json({ handler: true }), 300);
      },
      { ttlMs: 100, autoExtend: false },
    );
    const res = await request(url).post("/work/3");
    expect(res.status).toBe(202); // the handler's own response
    expect(reason).toBeInstanceOf(LockLostError);
    expect(guard.locks.stats().lost).toBe(1);
  });

  it("req.lock.release() and extend() act on the lock itself (no false loss afterwards)", async () => {
    const { url, guard } = await app(
      async (req, res) => {
        const extended = await req.lock!.extend(1200);
        const released = await req.lock!.release();
        // Past an auto-extension tick (every 200 ms): it must see the lock released, not lost.
        setTimeout(() => res.json({ extended, released, lost: req.lock!.lost }), 300);
      },
      { ttlMs: 600 },
    );
    const res = await request(url).post("/work/4");
    expect(res.body).toEqual({ extended: true, released: true, lost: false });
    expect(guard.locks.stats().lost).toBe(0);
  });

  it("a handler option that throws reaches the error handler (no unhandled rejection)", async () => {
    const { url } = await app((_req, res) => void setTimeout(() => res.json({}), 200), {
      handler: () => {
        throw new Error("handler boom");
      },
    });
    const [a, b] = await Promise.all([request(url).post("/work/6"), request(url).post("/work/6")]);
    expect([a.status, b.status].sort()).toEqual([200, 500]);
  });

  it("a client that leaves while waiting for the lock never takes it", async () => {
    let runs = 0;
    const { url, port } = await app(
      (_req, res) => {
        runs++;
        setTimeout(() => res.json({}), 200);
      },
      { waitMs: 5000 },
    );
    const first = request(url)
      .post("/work/11")
      .then((r) => r); // sent now: supertest requests start when awaited
    await wait(50);
    const socket = net.connect(port, "127.0.0.1");
    socket.write("POST /work/11 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    await wait(50);
    socket.destroy(); // leaves while the first request holds the lock
    expect((await first).status).toBe(200);
    const third = await request(url).post("/work/11");
    expect(third.status).toBe(200);
    expect(runs).toBe(2); // the one that left never ran
  });

  it("autoExtend keeps a short lock through a long handler", async () => {
    const { url, guard } = await app((_req, res) => void setTimeout(() => res.json({}), 1000), {
      ttlMs: 200,
    });
    const [first, second] = await Promise.all([
      request(url)
        .post("/work/8")
        .then((r) => r),
      wait(500).then(() => request(url).post("/work/8")),
    ]);
    expect(first.status).toBe(200);
    expect(second.status).toBe(409); // 500 ms in, 2.5 TTLs: still held thanks to extension
    expect(guard.locks.stats().lost).toBe(0);
  });
});

it("options are validated at construction", () => {
  expect(() => requireLock({} as RequireLockOptions)).toThrow(/requireLock: key must be/);
  expect(() => requireLock({ key: () => "x", statusCode: 418 as 409 })).toThrow(
    /requireLock: statusCode must be 409 or 423 \(got 418\)/,
  );
  expect(() => requireLock({ key: () => "x", handler: 5 as never })).toThrow(
    /requireLock: handler must be a function/,
  );
  expect(() => requireLock({ key: () => "x", ttlMs: 0 })).toThrow(/ttlMs/);
  // Past Node's timer range: refused at construction, not by every request.
  expect(() => requireLock({ key: () => "x", waitMs: 3e9 })).toThrow(
    /requireLock: waitMs must be a non-negative integer of at most 2147483647/,
  );
  expect(() => requireLock({ key: () => "x", maxHoldMs: 3e9 })).toThrow(/maxHoldMs/);
  expect(() => requireLock({ key: () => "x", waitMS: 5 } as RequireLockOptions)).toThrow(
    /did you mean "waitMs"/,
  );
});

it("the names before 1.0 are refused with a hint naming the new ones", () => {
  const old = (options: object) => () => requireLock({ key: () => "x", ...options });
  expect(old({ status: 423 })).toThrow(
    'requireLock: unknown option "status"; did you mean "statusCode"? (express-redis-kit before 1.0\'s `status`)',
  );
  expect(old({ onLocked: () => {} })).toThrow(
    'requireLock: unknown option "onLocked"; did you mean "handler"? (express-redis-kit before 1.0\'s `onLocked`)',
  );
  expect(old({ status: 423 })).toThrow(expect.objectContaining({ option: "status" }));
});

it("failure options: validated against the requireLock row, and not beside a shared manager", () => {
  const make = (options: object) => () => requireLock({ key: () => "x", ...options });
  expect(make({ onRedisError: "memory" })).toThrow(
    /requireLock: onRedisError "memory" is not offered here: a lock held in one process does not exclude the others/,
  );
  expect(make({ onRedisError: "shut" })).toThrow(/onRedisError must be one of "open", "closed"/);
  expect(make({ timeoutMs: 0 })).toThrow(/requireLock: timeoutMs must be a positive integer/);
  expect(make({ recheckMs: 1.5 })).toThrow(/requireLock: recheckMs must be a positive integer/);
  const locks = createLockManager({ logger: quiet });
  for (const name of ["timeoutMs", "recheckMs", "prefix"]) {
    expect(make({ locks, [name]: name === "prefix" ? "p:" : 100 })).toThrow(
      `requireLock: ${name} cannot be given with locks (the shared manager has its own)`,
    );
  }
  // Negative control: the shared manager with the middleware's own mode is fine.
  expect(make({ locks, onRedisError: "open" })).not.toThrow();
});
