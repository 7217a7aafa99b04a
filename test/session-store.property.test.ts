/**
 * A randomized run of logins, same-id logins (owner changes), logouts, writes, revokes and
 * "revoke all but one" through express-session, checked against a model of who each cookie
 * jar is, then the index checked against the sessions (fast-check, fixed seed).
 */

import fc from "fast-check";
import type { Cluster, Redis } from "ioredis";
import request from "supertest";
import { sessionHandle } from "../index.js";
import { closeClients, collectUnhandledRejections } from "./helpers.js";
import { BACKENDS, makeStore, type StoreUnderTest, sessionApp } from "./session-helpers.js";

const rejections = collectUnhandledRejections();
afterAll(closeClients);
afterEach(() => expect(rejections).toEqual([]));

const JARS = 4;
const USERS = ["alice", "bob", "carol"];
const jar = fc.nat(JARS - 1);
const user = fc.constantFrom(...USERS);
const operation = fc.oneof(
  fc.record({ kind: fc.constant("login" as const), jar, user }),
  fc.record({ kind: fc.constant("loginSameId" as const), jar, user }),
  fc.record({ kind: fc.constant("logout" as const), jar }),
  fc.record({ kind: fc.constant("write" as const), jar }),
  fc.record({ kind: fc.constant("revoke" as const), jar }),
  fc.record({ kind: fc.constant("revokeAll" as const), user, except: fc.option(jar) }),
);
type Operation = typeof operation extends fc.Arbitrary<infer T> ? T : never;

/** Every live index entry names a live session of that user, and every owned session is indexed. */
async function checkIndex(t: StoreUnderTest): Promise<void> {
  const sessions = (await t.store.all()) as { id: string; userId?: string }[];
  for (const name of USERS) {
    const owned = sessions.filter((s) => s.userId === name).map((s) => sessionHandle(s.id));
    const listed = (await t.store.listUserSessions(name)).map((s) => s.id);
    expect(listed.sort()).toEqual(owned.sort());
    if (t.redis === undefined) continue;
    const redis = t.redis as Redis | Cluster;
    const index = `${t.indexPrefix}{${name}}`;
    const entries = await redis.zrange(index, 0, "-1");
    const bySid = new Map(sessions.map((s) => [s.id, s]));
    for (const sid of entries) expect(bySid.get(sid)?.userId).toBe(name);
    for (const s of sessions.filter((x) => x.userId === name)) expect(entries).toContain(s.id);
    const ttl = await redis.pttl(index);
    expect(entries.length === 0 ? ttl === -2 : ttl > 0).toBe(true);
  }
}

describe.each(BACKENDS)("randomized consistency on %s", (backend) => {
  test("index and sessions agree after random runs; each jar is who the model says", async () => {
    const t = makeStore(backend, __filename);
    const app = sessionApp(t.store); // one app: session() adds listeners to the store
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 5, maxLength: 30 }), async (ops) => {
        await t.store.clear();
        const jars = Array.from({ length: JARS }, () => request.agent(app));
        const model: { user: string | null; sid: string | null }[] = jars.map(() => ({
          user: null,
          sid: null,
        }));
        for (const op of ops) await apply(t, jars, model, op);
        for (const [i, j] of jars.entries()) {
          expect({ jar: i, user: (await j.get("/me").expect(200)).body.user }).toEqual({
            jar: i,
            user: model[i]!.user,
          });
        }
        await checkIndex(t);
      }),
      { numRuns: 25, seed: 20261202 },
    );
    await t.store.clear();
    await t.store.close();
  });
});

async function apply(
  t: StoreUnderTest,
  jars: ReturnType<typeof request.agent>[],
  model: { user: string | null; sid: string | null }[],
  op: Operation,
): Promise<void> {
  switch (op.kind) {
    case "login":
    case "loginSameId": {
      const path = op.kind === "login" ? "/login" : "/login-same-id";
      const res = await jars[op.jar]!.post(`${path}/${op.user}`).expect(200);
      model[op.jar] = { user: op.user, sid: res.body.sid };
      return;
    }
    case "logout":
      await jars[op.jar]!.post("/logout").expect(200);
      model[op.jar] = { user: null, sid: null };
      return;
    case "write":
      await jars[op.jar]!.post("/write").expect(200);
      return;
    case "revoke": {
      const m = model[op.jar]!;
      if (m.user === null || m.sid === null) return;
      expect(await t.store.revokeSession(m.user, sessionHandle(m.sid))).toBe(true);
      model[op.jar] = { user: null, sid: null };
      return;
    }
    case "revokeAll": {
      const except = op.except === null ? undefined : (model[op.except]!.sid ?? undefined);
      const expected = model.filter((m) => m.user === op.user && m.sid !== except);
      const count = await t.store.revokeUserSessions(op.user, except ? { except } : {});
      expect(count).toBe(expected.length);
      for (const m of expected) {
        m.user = null;
        m.sid = null;
      }
      return;
    }
  }
}
