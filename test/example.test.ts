/** The example app: routes on both backends, and `npm start`'s server without a reachable Redis. */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import request from "supertest";
import { createExampleApp } from "../examples/app.js";
import { freePort } from "./harness/redis-server.ts";
import { closeClients, newRedis, testPrefix } from "./helpers.js";

afterAll(closeClients);

describe.each(["memory", "standalone"] as const)("example app on %s", (backend) => {
  it("serves the page, a rate-limited route, login attempts per account and health", async () => {
    const redis = backend === "memory" ? undefined : newRedis();
    const app = createExampleApp(redis, testPrefix(__filename));
    const home = await request(app).get("/");
    expect(home.status).toBe(200);
    expect(home.text).toContain(
      `<strong id="backend">${backend === "memory" ? "memory" : "redis"}</strong>`,
    );
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(app).get("/api/hello")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    await request(app).post("/api/limits/reset");
    const logins = [];
    for (let i = 0; i < 5; i++) {
      logins.push(
        (
          await request(app)
            .post("/api/login")
            .send({ account: `alice-${backend}` })
        ).status,
      );
    }
    expect(logins).toEqual([401, 401, 401, 401, 401]);
    await request(app).post("/api/limits/reset");
    expect(
      (
        await request(app)
          .post("/api/login")
          .send({ account: `alice-${backend}` })
      ).status,
    ).toBe(429);
    // The slow report: computed once, then answered from the cache until purged. One server,
    // so every request has the same Host (part of the cache key).
    const server = app.listen(0);
    await once(server, "listening");
    try {
      const report = () => request(server).get("/api/report");
      await request(server).post("/api/limits/reset");
      const first = await report();
      const second = await report();
      expect([first.headers["x-cache"], second.headers["x-cache"]]).toEqual(["MISS", "HIT"]);
      expect(second.body).toEqual(first.body);
      expect((await request(server).post("/api/report/purge")).body.purged).toBeGreaterThanOrEqual(
        1,
      );
      const third = await report();
      expect(third.headers["x-cache"]).toBe("MISS");
      expect(third.body.runs).toBe(first.body.runs + 1);
      // Two imports at once from one client: one runs, the other is told to come back.
      const imports = await Promise.all([
        request(server).post("/api/imports"),
        request(server).post("/api/imports"),
      ]);
      expect(imports.map((r) => r.status).sort()).toEqual([200, 409]);
      expect(imports.find((r) => r.status === 409)!.headers["retry-after"]).toBeDefined();
    } finally {
      server.close();
    }
    const health = await request(app).get("/health/redis");
    expect(health.body.mode).toBe(backend === "memory" ? "memory" : "standalone");
  });

  it("logs in twice as one user, lists both sessions and logs the other out", async () => {
    const redis = backend === "memory" ? undefined : newRedis();
    const app = createExampleApp(redis, testPrefix(__filename));
    const laptop = request.agent(app);
    const phone = request.agent(app);
    const credentials = { account: "alice", password: "demo" };
    expect((await laptop.get("/api/sessions")).status).toBe(401);
    await laptop.post("/api/login").set("User-Agent", "laptop").send(credentials).expect(200);
    await phone.post("/api/login").set("User-Agent", "phone").send(credentials).expect(200);
    const list = (await laptop.get("/api/sessions").expect(200)).body as Record<string, unknown>[];
    expect(list.map((s) => [s.userAgent, s.current]).sort()).toEqual([
      ["laptop", true],
      ["phone", false],
    ]);
    expect((await laptop.post("/api/sessions/revoke-others").expect(200)).body).toEqual({
      revoked: 1,
    });
    expect((await phone.get("/api/me")).body).toEqual({ user: null });
    expect((await laptop.get("/api/me")).body).toEqual({ user: "alice" });
    await laptop.post("/api/logout").expect(200);
    expect((await laptop.get("/api/me")).body).toEqual({ user: null });
  });
});

it("npm start without a reachable Redis runs on memory and says so in one line", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "examples/server.ts"], {
    cwd: resolve(__dirname, ".."),
    env: {
      ...process.env,
      REDIS_URL: `redis://:secret@127.0.0.1:${await freePort()}`,
      PORT: String(port),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    while (!output.includes("listening on")) await once(child.stdout, "data");
    expect(output).toMatch(
      /no Redis at redis:\/\/127\.0\.0\.1:\d+\/? \(.*ECONNREFUSED.*\); running on the in-process memory backend/,
    );
    expect(output).not.toContain("secret");
    const res = await fetch(`http://127.0.0.1:${port}/health/redis`);
    expect(await res.json()).toMatchObject({ status: "ok", mode: "memory" });
    // The server listens on every interface, so req.ip is IPv4-mapped IPv6 (::ffff:127.0.0.1):
    // reset must still clear the key the limiter counts under.
    const statuses = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await fetch(`http://127.0.0.1:${port}/api/hello`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    await fetch(`http://127.0.0.1:${port}/api/limits/reset`, { method: "POST" });
    expect((await fetch(`http://127.0.0.1:${port}/api/hello`)).status).toBe(200);
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
}, 30_000);
