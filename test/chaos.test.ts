/**
 * The chaos suite's reduced set (`npm run chaos` runs every fault, repeated, and prints the
 * table): an Express app using every feature, under steady load, through a SIGKILL of a master
 * whose replica lags 300 ms, on a Cluster with replicas and on Sentinel (locks and sessions
 * with `replicas: { count: 1 }`, and without as the control that sessions can be lost), and
 * through a stalled and a reset network. The hard guarantees: no request past its deadline,
 * no unhandled rejection, every feature back to normal without an app restart (the event stream
 * read over HTTP stays open and gets messages again), no acknowledged session lost and no lock
 * granted twice. A negative control shows the app does see a double
 * grant when one happens.
 */
import { Redis } from "ioredis";
import { closeRedisClient, createRedisClient } from "../index.js";
import { type RoundFigures, runChaos } from "./harness/chaos.ts";
import { startChaosApp } from "./harness/chaos-app.ts";
import { eventually, quiet, redisUrl } from "./helpers.js";

function expectGuarantees(figures: RoundFigures[]) {
  for (const f of figures) {
    const where = `${f.fault}${f.replicas ? " with replicas" : ""}`;
    expect({ where, hung: f.hung, unhandled: f.unhandledRejections }).toEqual({
      where,
      hung: 0,
      unhandled: 0,
    });
    expect({ where, unrecovered: f.unrecovered }).toEqual({ where, unrecovered: false });
    // The fault did reach the app: health said so.
    expect({ where, healthReported: f.healthReported }).toEqual({ where, healthReported: true });
    expectSubscriberBack(f);
  }
}

/** The Server-Sent Events client kept its stream through the fault and got messages after it. */
function expectSubscriberBack(f: RoundFigures) {
  const where = f.fault;
  expect({ where, reopened: f.streamsReopened, back: f.subscriberBackMs >= 0 }).toEqual({
    where,
    reopened: 0,
    back: true,
  });
}

it("a Cluster master killed while its replica lags: every feature recovers; with replicas, no acknowledged session lost, no double grant", async () => {
  const figures = await runChaos(["cluster-lagkill"], { replicas: true });
  expectGuarantees(figures);
  for (const f of figures) {
    expect(f).toMatchObject({ sessionsLostOld: 0, sessionsLostRecent: 0, doubleGrants: 0 });
    expect(f.sessionsChecked).toBeGreaterThan(0);
  }
}, 180_000);

it("the Sentinel master killed while its replica lags: without replicas, sessions acknowledged in the lag are lost (the control); with replicas, none", async () => {
  const without = await runChaos(["sentinel-lagkill"], {});
  expectGuarantees(without);
  expect(without[0]!.sessionsLostRecent).toBeGreaterThan(0);
  expect(without[0]!.sessionsLostOld).toBe(0);
  const acknowledged = await runChaos(["sentinel-lagkill"], { replicas: true });
  expectGuarantees(acknowledged);
  for (const f of acknowledged) {
    expect(f).toMatchObject({ sessionsLostOld: 0, sessionsLostRecent: 0, doubleGrants: 0 });
    expect(f.sessionsChecked).toBeGreaterThan(0);
  }
}, 240_000);

it("a stalled network and reset connections: no request hangs, every feature recovers, nothing is lost", async () => {
  const figures = await runChaos(["proxy-stall", "proxy-reset"], {});
  for (const f of figures) {
    const where = f.fault;
    expect({ where, hung: f.hung, unhandled: f.unhandledRejections }).toEqual({
      where,
      hung: 0,
      unhandled: 0,
    });
    expect({ where, unrecovered: f.unrecovered }).toEqual({ where, unrecovered: false });
    expect(f).toMatchObject({ sessionsLostOld: 0, sessionsLostRecent: 0, doubleGrants: 0 });
    expectSubscriberBack(f);
  }
  // The stall was felt: requests failed (answered 503 within their deadlines, not hung).
  const stall = figures.find((f) => f.fault === "proxy-stall")!;
  expect(stall.failed.requireLock! + stall.failed.sessions!).toBeGreaterThan(0);
}, 180_000);

it("negative control: a lock whose key vanishes while its holder works is seen granted twice", async () => {
  const redis = createRedisClient({ client: "ioredis", url: redisUrl(), logger: quiet });
  const inspector = new Redis(redisUrl());
  const app = await startChaosApp({ redis, lockHoldMs: 2000 });
  try {
    const first = fetch(`${app.url}/lock/x`, { method: "POST" });
    await eventually("the first holder at work", async () => expect(app.grants).toBe(1));
    const keys = await inspector.keys("chaos:*:l:*");
    expect(keys.length).toBeGreaterThan(0);
    await inspector.del(...keys);
    const second = await fetch(`${app.url}/lock/x`, { method: "POST" });
    expect(second.status).toBe(200);
    expect((await first).status).toBe(200);
    expect(app.doubleGrants).toBe(1);
  } finally {
    await app.close();
    inspector.disconnect();
    closeRedisClient(redis);
  }
});
