/**
 * The example app: routes on both backends, and `npm start`'s server: on memory when no Redis is
 * configured, on a configured Redis that answers only later (503 until then, 200 after, without
 * a restart), and on node-redis.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { resolve } from "node:path";
import request from "supertest";
import { createExampleApp, type ExampleApp } from "../examples/app.js";
import { freePort, startRedisServer } from "./harness/redis-server.ts";
import { clientFor, closeClients, eventually, redisUrl, testPrefix } from "./helpers.js";
import { openStream } from "./sse-client.js";

afterAll(closeClients);

describe.each(["memory", "standalone", "node-redis"] as const)("example app on %s", (backend) => {
  let app: ExampleApp;
  let server: Server;
  let base: string;
  beforeEach(async () => {
    app = createExampleApp(clientFor(backend), testPrefix(`${__filename}-${backend}`));
    server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    server.close();
    await app.close();
  });
  const login = async (account = "alice", agent = "test") => {
    const jar = request.agent(base);
    const res = await jar
      .post("/login")
      .set("User-Agent", agent)
      .send({ account, password: "demo" });
    expect(res.status).toBe(200);
    const cookie = String(res.headers["set-cookie"]).split(";")[0]!;
    return { jar, cookie, session: res.body.session as string };
  };

  it("serves the page, limits the API per IP, and answers health and metrics", async () => {
    const home = await request(base).get("/");
    expect(home.status).toBe(200);
    expect(home.text).toContain(
      `<strong id="backend">${backend === "memory" ? "memory" : "redis"}</strong>`,
    );
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(base).get("/api/hello")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    await request(base).post("/api/limits/reset").expect(200);
    await request(base).get("/api/hello").expect(200);
    const health = await request(base).get("/health/redis");
    expect(health.body.mode).toBe(backend === "memory" ? "memory" : "standalone");
    const metrics = await request(base).get("/metrics").expect(200);
    expect(metrics.text).toContain("erk_rate_limit_requests_total");
  });

  it("logins: 5 failures per account, success does not count, a new session id at login", async () => {
    const fails = [];
    for (let i = 0; i < 5; i++) {
      fails.push(
        (await request(base).post("/login").send({ account: "bob", password: "x" })).status,
      );
    }
    expect(fails).toEqual([401, 401, 401, 401, 401]);
    const blocked = await request(base).post("/login").send({ account: "bob", password: "demo" });
    expect(blocked.status).toBe(429);
    expect(blocked.headers["retry-after"]).toBeDefined();
    // alice: four successful logins in a row never lock her out.
    for (let i = 0; i < 4; i++) await login("alice");
    // No fixation: a session that existed before login is replaced.
    const jar = request.agent(base);
    const before = await jar.post("/login").send({ account: "alice", password: "demo" });
    const after = await jar.post("/login").send({ account: "alice", password: "demo" });
    expect(after.body.session).not.toBe(before.body.session);
    expect(
      await request(base)
        .post("/login")
        .send({ account: "" })
        .then((r) => r.status),
    ).toBe(400);
  });

  it("portfolio stats are cached per user until purged", async () => {
    const alice = await login("alice");
    const bob = await login("bob");
    await request(base).get("/api/portfolio/stats").expect(401);
    const first = await alice.jar.get("/api/portfolio/stats").expect(200);
    const second = await alice.jar.get("/api/portfolio/stats").expect(200);
    expect([first.headers["x-cache"], second.headers["x-cache"]]).toEqual(["MISS", "HIT"]);
    expect(second.body).toEqual(first.body);
    const bobs = await bob.jar.get("/api/portfolio/stats").expect(200);
    expect(bobs.headers["x-cache"]).toBe("MISS");
    expect(bobs.body.user).toBe("bob");
    expect((await alice.jar.post("/api/portfolio/stats/purge").expect(200)).body.purged).toBe(1);
    expect((await alice.jar.get("/api/portfolio/stats")).headers["x-cache"]).toBe("MISS");
    expect((await bob.jar.get("/api/portfolio/stats")).headers["x-cache"]).toBe("HIT");
  });

  it("trades and import progress arrive on the user's event stream; one import at a time", async () => {
    const alice = await login("alice");
    const bob = await login("bob");
    const stream = await openStream(`${base}/events`, { cookie: alice.cookie });
    const bobStream = await openStream(`${base}/events`, { cookie: bob.cookie });
    await stream.until(": connected");
    const trade = await alice.jar
      .post("/api/trades")
      .send({ symbol: "ACME", quantity: 3 })
      .expect(201);
    expect(trade.body.receivers).toBeGreaterThanOrEqual(1);
    await stream.until('"symbol":"ACME"');
    await alice.jar.post("/api/trades").send({ symbol: "acme; DROP", quantity: 3 }).expect(400);
    const imports = await Promise.all([
      alice.jar.post("/api/imports"),
      alice.jar.post("/api/imports"),
      bob.jar.post("/api/imports"), // another user: not blocked by alice's import
    ]);
    expect(
      imports
        .slice(0, 2)
        .map((r) => r.status)
        .sort(),
    ).toEqual([200, 409]);
    expect(imports[2]!.status).toBe(200);
    await stream.until('"step":5');
    expect(stream.text()).toContain("event: import.progress");
    await bobStream.until('"step":5');
    expect(bobStream.text()).not.toContain("ACME"); // alice's trade is not bob's event
    stream.req.destroy();
    bobStream.req.destroy();
  });

  it("two sessions of one user: listed, the other revoked, its event stream told and closed", async () => {
    const laptop = await login("alice", "laptop");
    const phone = await login("alice", "phone");
    const phoneStream = await openStream(`${base}/events`, { cookie: phone.cookie });
    await phoneStream.until(": connected");
    const list = (await laptop.jar.get("/api/sessions").expect(200)).body as Record<
      string,
      unknown
    >[];
    expect(list.map((s) => [s.userAgent, s.current]).sort()).toEqual([
      ["laptop", true],
      ["phone", false],
    ]);
    expect(list.find((s) => !s.current)!.id).toBe(phone.session);
    expect((await laptop.jar.post("/api/sessions/revoke-others").expect(200)).body).toEqual({
      revoked: 1,
    });
    await phoneStream.until("event: session.revoked");
    await phoneStream.ended; // the server closed the revoked session's stream
    expect((await phone.jar.get("/api/me")).body).toEqual({ user: null, session: null });
    expect((await laptop.jar.get("/api/me")).body.user).toBe("alice");
    const dashboard = await laptop.jar.get("/api/dashboard").expect(200);
    expect(dashboard.body.sessions).toMatchObject({ mine: 1, revoked: 1 });
    await laptop.jar.post("/logout").expect(200);
    expect((await laptop.jar.get("/api/me")).body.user).toBeNull();
  });
});

/** What a running `npm start` offers a test. */
interface Started {
  base: string;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** Resolves when the output contains `text` (awaits the child's output; no polling). */
  until(text: string): Promise<void>;
}

/** The environment names `npm start` reads to find a Redis. */
const REDIS_ENV = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_CLIENT"];

/**
 * Runs `npm start`'s server with `env` (and none of the Redis variables of this process) on a
 * free port until it listens, then `check`; stops it after.
 */
async function withServer(env: Record<string, string>, check: (app: Started) => Promise<void>) {
  const port = await freePort();
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !REDIS_ENV.includes(name)),
  );
  const child = spawn(process.execPath, ["--import", "tsx", "examples/server.ts"], {
    cwd: resolve(__dirname, ".."),
    env: { ...inherited, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const waiting = new Set<() => void>();
  const record = (chunk: Buffer) => {
    output += chunk.toString();
    for (const wake of waiting) wake();
  };
  child.stdout.on("data", record);
  child.stderr.on("data", record);
  const until = (text: string) =>
    new Promise<void>((done, fail) => {
      const wake = () => {
        if (!output.includes(text)) return;
        waiting.delete(wake);
        done();
      };
      const exited = () => fail(new Error(`exited before printing ${text}:\n${output}`));
      waiting.add(wake);
      child.once("exit", exited);
      wake();
    });
  let checked = false;
  try {
    await until("listening on");
    await check({ base: `http://127.0.0.1:${port}`, output: () => output, until });
    checked = true;
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = await exited;
      // Closed by itself, not cut short by the example's 5 s deadline (exit code 1).
      if (checked) expect({ code, output }).toMatchObject({ code: 0 });
    }
  }
}

/** True when something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

/** `GET base/health/redis`: status code and body. */
async function health(base: string) {
  const res = await fetch(`${base}/health/redis`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The state of each feature the health body lists. */
const states = (body: Record<string, unknown>) =>
  [...new Set((body.features as { state: string }[]).map((f) => f.state))].sort();

/** What the memory-backed `npm start` must do: 200 mode memory, limits per process. */
async function checkMemory({ base, output }: Started) {
  const res = await health(base);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: "ok", mode: "memory", client: null });
  expect(states(res.body)).toEqual(["memory"]); // every feature, none on Redis
  // The server listens on every interface, so req.ip is IPv4-mapped IPv6 (::ffff:127.0.0.1):
  // reset must still clear the key the limiter counts under.
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await fetch(`${base}/api/hello`)).status);
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  await fetch(`${base}/api/limits/reset`, { method: "POST" });
  expect((await fetch(`${base}/api/hello`)).status).toBe(200);
  expect(output()).not.toContain("example: Redis at");
}

it("npm start with REDIS_URL=memory runs on memory without trying a Redis, and says so", async () => {
  await withServer({ REDIS_URL: "memory" }, async (started) => {
    expect(started.output()).toContain(
      "REDIS_URL=memory: running on the in-process memory backend",
    );
    await checkMemory(started);
  });
}, 30_000);

it("npm start with no Redis configured tries the local default once, and says which mode it is in", async () => {
  const local = await listening(6379); // a developer machine may run one there
  await withServer({}, async (started) => {
    if (local) {
      expect(started.output()).toContain(
        "REDIS_URL is not set; using Redis at redis://127.0.0.1:6379 through ioredis",
      );
      const res = await health(started.base);
      expect(res.body).toMatchObject({ mode: "standalone", client: "ioredis" });
      return;
    }
    expect(started.output()).toMatch(
      /REDIS_URL is not set and no Redis answers at redis:\/\/127\.0\.0\.1:6379 \(.*ECONNREFUSED.*\); running on the in-process memory backend/,
    );
    await checkMemory(started);
  });
}, 30_000);

it.each(["ioredis", "node-redis"])(
  "%s: REDIS_URL at a Redis not answering yet: used anyway, 503 until it answers, then 200 without a restart",
  async (family) => {
    const redis = await startRedisServer(["--requirepass", "secret"]);
    await redis.stop(); // its port: nothing listens there until start() below
    const env = { REDIS_URL: `redis://:secret@127.0.0.1:${redis.port}`, REDIS_CLIENT: family };
    try {
      await withServer(env, async ({ base, output, until }) => {
        const target = `redis://127.0.0.1:${redis.port}`;
        expect(output()).toMatch(
          new RegExp(
            `Redis at ${target.replace(/[./]/g, "\\$&")} does not answer yet \\(.*ECONNREFUSED.*\\); using it through ${family} anyway and retrying`,
          ),
        );
        expect(output()).not.toContain("memory backend");
        const down = await health(base);
        expect(down.status).toBe(503);
        expect(down.body).toMatchObject({ status: "down", mode: "standalone", client: family });
        // The features follow their failure model: the limit counts in memory, sessions 503.
        const hello = await fetch(`${base}/api/hello`);
        expect(hello.status).toBe(200);
        expect(((await hello.json()) as { rateLimit: { backend: string } }).rateLimit.backend).toBe(
          "memory",
        );
        const login = () =>
          fetch(`${base}/login`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ account: "alice", password: "demo" }),
          });
        expect((await login()).status).toBe(503);
        const degraded = await health(base);
        expect(degraded.status).toBe(503);
        expect(states(degraded.body)).toContain("degraded");
        const backLine = `example: Redis at ${target} answers again`;
        expect(output()).not.toContain(backLine);

        await redis.start();
        await until(backLine);
        // Each degraded feature is back within recheckMs (1 s): its own PING, or a request.
        await eventually("the rate limit counts on Redis again", async () => {
          const again = await fetch(`${base}/api/hello`);
          const body = (await again.json()) as { rateLimit: { backend: string } };
          expect(body.rateLimit.backend).toBe("redis");
        });
        // Each feature probes on its own: sessions too, not necessarily in the same instant.
        await eventually("sessions on Redis again", async () => {
          expect((await login()).status).toBe(200);
        });
        // Every feature (cache, locks, pub/sub too) is back within its recheckMs as well.
        await eventually("health is 200 again", async () => {
          expect((await health(base)).status).toBe(200);
        });
        const back = await health(base);
        expect(back.status).toBe(200);
        expect(back.body).toMatchObject({ status: "ok", mode: "standalone", client: family });
        expect(states(back.body)).toEqual(["redis"]);
        expect(output().split(backLine).length - 1).toBe(1);
        expect(output()).not.toContain("secret");
      });
    } finally {
      await redis.stop();
    }
  },
  30_000,
);

it("REDIS_CLIENT=node-redis npm start runs on node-redis and says so", async () => {
  await withServer(
    { REDIS_URL: redisUrl(), REDIS_CLIENT: "node-redis" },
    async ({ base, output }) => {
      expect(output()).toContain(`using Redis at ${redisUrl()}`);
      expect(output()).toContain("through node-redis");
      const res = await health(base);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "ok", mode: "standalone", client: "node-redis" });
      expect(states(res.body)).toEqual(["redis"]);
    },
  );
}, 30_000);
