/**
 * The packed tarball: `npm pack`, install it into a temporary project, then `require` and
 * `import` the root and every subpath (`/rate-limit`, `/cache`, `/lock`, `/session`, `/pubsub`),
 * type-check consumers in both module systems (and on @types/express 4), and run it on Express 4.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import ts from "typescript";

const root = resolve(__dirname, "..");
let dir: string;

const run = (command: string, args: string[], cwd = dir) =>
  execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const node = (script: string, esm = false, cwd = dir) =>
  run("node", [...(esm ? ["--input-type=module"] : []), "-e", script], cwd);

const ERRORS = [
  "ExpressRedisKitError",
  "InvalidOptionError",
  "RedisTimeoutError",
  "StoreUnavailableError",
];
/** The runtime exports of each subpath: its feature, and the errors it throws. */
const SUBPATHS: Record<string, string[]> = {
  "rate-limit": ["createRateLimiter", "ipKeyGenerator", "normalizeIp", "rateLimit", ...ERRORS],
  cache: ["cacheResponse", ...ERRORS],
  lock: [
    ...["ClientClosedError", "createLockManager", "LockLostError", "LockNotAcquiredError"],
    ...["MAX_RESOURCE_LENGTH", "ReplicationTimeoutError", "requireLock", ...ERRORS],
  ],
  session: [
    ...["createSessionStore", "isValidSessionId", "MAX_SESSION_ID_LENGTH", "MAX_USER_ID_LENGTH"],
    ...["MemorySessionStore", "sessionHandle", "trackSessions", "TRACKING_FIELD"],
    ...["ReplicationTimeoutError", "UserSessionStore", "unavailableHandler", ...ERRORS],
  ],
  pubsub: ["createPubSub", "sse", "sseStats", ...ERRORS],
};
/** Root exports in no subpath: connections, health, metrics, key helpers (values, then types). */
const ROOT_ONLY = [
  ...["checkRedisHealth", "closeRedisClient", "createRedisClient", "DEFAULT_REDIS_TIMEOUT_MS"],
  ...["isCluster", "keyPart", "MAX_TAG_LENGTH", "metrics", "redisHealth"],
  ...["ClientFamily", "FeatureState", "HealthCheckOptions", "MetricsMiddleware", "MetricsOptions"],
  ...["MetricsRegistry", "NodeAddress", "RedisClientOptions", "RedisHealth", "RedisHealthOptions"],
  "Topology",
];
/** Each feature's modules: a subpath loads its own and no other feature's (but `uses`). */
const FEATURE_MODULES: Record<string, RegExp> = {
  "rate-limit": /\/(stores\/rate-limit|middleware\/rate-limit)/,
  cache: /\/(stores\/cache|middleware\/cache)/,
  lock: /\/(stores\/lock|middleware\/require-lock)/,
  session: /\/(stores\/session|middleware\/track-sessions)/,
  pubsub: /\/(stores\/pubsub|middleware\/sse)/,
};
/** Cache purges, lock releases and session revocations travel over pub/sub. */
const USES: Record<string, string[]> = {
  "rate-limit": ["pubsub"],
  cache: ["pubsub"],
  lock: ["pubsub"],
  session: ["pubsub"],
};
const specs = ["express-redis-kit", ...Object.keys(SUBPATHS).map((s) => `express-redis-kit/${s}`)];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "erk-pack-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], root);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error("npm pack wrote no tarball");
  writeFileSync(join(dir, "package.json"), '{ "name": "consumer", "private": true }\n');
  run("npm", [
    "install",
    "--prefer-offline",
    "--no-audit",
    "--no-fund",
    "--ignore-scripts",
    `./${tarball}`,
  ]);
  // The consumer's own copies of the optional peer (express) and of the type packages.
  symlinkSync(join(root, "node_modules/express"), join(dir, "node_modules/express"));
  symlinkSync(join(root, "node_modules/@types"), join(dir, "node_modules/@types"));
  // A second consumer on Express 4 and @types/express 4 (resolved through its links).
  const e4 = join(dir, "e4/node_modules");
  mkdirSync(join(e4, "@types"), { recursive: true });
  const link = (from: string, to: string) => symlinkSync(from, join(e4, to));
  link(join(dir, "node_modules/express-redis-kit"), "express-redis-kit");
  link(join(root, "node_modules/express4"), "express");
  link(join(root, "node_modules/express-session"), "express-session");
  // Every type package of the root but Express 5's, whose v4 copies sit inside @types/express4.
  const v5 = ["express", "express4", "express-serve-static-core", "serve-static", "send"];
  for (const types of readdirSync(join(root, "node_modules/@types")))
    if (!v5.includes(types)) link(join(root, "node_modules/@types", types), `@types/${types}`);
  link(join(root, "node_modules/@types/express4"), "@types/express");
  link(join(root, "node_modules/undici-types"), "undici-types"); // @types/node's
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it("ships only dist/ and the package files, with ESM, CommonJS and types for every subpath", () => {
  const files = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], root);
  const paths: string[] = JSON.parse(files)[0].files.map((f: { path: string }) => f.path);
  expect(paths.filter((p) => !p.startsWith("dist/")).sort()).toEqual([
    "LICENSE",
    "README.md",
    "package.json",
  ]);
  for (const name of ["index", ...Object.keys(SUBPATHS)]) {
    const cjs = name === "index" ? "dist/cjs/index" : `dist/cjs/entries/${name}`;
    for (const file of [`dist/esm/${name}.js`, `dist/esm/${name}.d.ts`, `${cjs}.js`, `${cjs}.d.ts`])
      expect(paths).toContain(file);
  }
}, 60_000);

it("require() of the root and of each subpath: the listed exports, the root's very values", () => {
  const out = node(
    [
      `const root = require("express-redis-kit");`,
      `const report = {};`,
      `for (const spec of ${JSON.stringify(specs.slice(1))}) {`,
      `  const m = require(spec);`,
      `  report[spec] = Object.keys(m).filter((k) => k !== "__esModule").sort();`,
      `  report[spec + " differs"] = report[spec].filter((k) => m[k] !== root[k]);`,
      `}`,
      `console.log(JSON.stringify(report));`,
    ].join("\n"),
  );
  const report = JSON.parse(out) as Record<string, string[]>;
  for (const [subpath, names] of Object.entries(SUBPATHS)) {
    expect(report[`express-redis-kit/${subpath}`]).toEqual([...names].sort());
    expect(report[`express-redis-kit/${subpath} differs`]).toEqual([]);
  }
});

it("every root export, types included, is in a subpath or knowingly root-only", () => {
  const dist = join(dir, "node_modules/express-redis-kit/dist/cjs");
  const files = [
    join(dist, "index.d.ts"),
    ...Object.keys(SUBPATHS).map((s) => join(dist, `entries/${s}.d.ts`)),
  ];
  // The export lists of the .d.ts files (the entries and the barrel only re-export by name).
  const names = (file: string) =>
    ts
      .createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest)
      .statements.flatMap((statement) => {
        if (!ts.isExportDeclaration(statement)) return [];
        const clause = statement.exportClause;
        if (clause === undefined || !ts.isNamedExports(clause))
          throw new Error(`${file}: export *`);
        return clause.elements.map((element) => element.name.text);
      });
  const [rootNames, ...subpathNames] = files.map(names);
  const inSubpaths = new Set(subpathNames.flat());
  for (const name of subpathNames.flat())
    expect([name, rootNames!.includes(name)]).toEqual([name, true]);
  expect(rootNames!.filter((n) => !inSubpaths.has(n) && !ROOT_ONLY.includes(n))).toEqual([]);
  expect(subpathNames[0]).toContain("RateLimitResult"); // types are listed, not only values
});

it("import of the root and of each subpath: the same names and values as require()", () => {
  const out = node(
    [
      `import { createRequire } from "node:module";`,
      `const require = createRequire(import.meta.url);`,
      `const report = {};`,
      `for (const spec of ${JSON.stringify(specs)}) {`,
      `  const esm = await import(spec), cjs = require(spec);`,
      `  const names = Object.keys(esm).filter((k) => k !== "default");`,
      `  const wanted = Object.keys(cjs).filter((k) => k !== "__esModule");`,
      `  report[spec] = [names.length === wanted.length, wanted.every((k) => esm[k] === cjs[k]), esm.default === cjs];`,
      `}`,
      `console.log(JSON.stringify(report));`,
    ].join("\n"),
    true,
  );
  expect(JSON.parse(out)).toEqual(Object.fromEntries(specs.map((s) => [s, [true, true, true]])));
});

it("instanceof holds across subpaths and module systems (one class per error)", () => {
  const out = node(
    [
      `import { rateLimit } from "express-redis-kit/rate-limit";`,
      `import { InvalidOptionError, ExpressRedisKitError } from "express-redis-kit";`,
      `import { ExpressRedisKitError as SessionBase } from "express-redis-kit/session";`,
      `import { createLockManager, LockNotAcquiredError } from "express-redis-kit/lock";`,
      `import { createRequire } from "node:module";`,
      `const require = createRequire(import.meta.url);`,
      `let caught; try { rateLimit({ windowMs: -5, limit: 1 }) } catch (e) { caught = e }`,
      `const locks = createLockManager({});`,
      `const held = await locks.acquire("r", { ttlMs: 5000 });`,
      `let busy; try { await locks.acquire("r") } catch (e) { busy = e }`,
      `console.log([`,
      `  caught instanceof InvalidOptionError,`,
      `  caught instanceof require("express-redis-kit/cache").InvalidOptionError,`,
      `  caught instanceof require("express-redis-kit").ExpressRedisKitError,`,
      `  caught instanceof SessionBase, SessionBase === ExpressRedisKitError,`,
      `  busy instanceof LockNotAcquiredError,`,
      `  busy instanceof require("express-redis-kit").LockNotAcquiredError,`,
      `].join(" "));`,
      `await held.release(); await locks.close?.();`,
    ].join("\n"),
    true,
  );
  expect(out.trim()).toBe("true true true true true true true");
});

it("a subpath loads its own feature's modules and none of the others'", () => {
  const out = node(
    [
      `const { execFileSync } = require("node:child_process");`,
      `const report = {};`,
      `for (const s of ${JSON.stringify(Object.keys(SUBPATHS))}) {`,
      `  const code = 'require("express-redis-kit/' + s + '"); console.log(JSON.stringify(Object.keys(require.cache)))';`,
      `  report[s] = JSON.parse(execFileSync(process.execPath, ["-e", code], { encoding: "utf8" }));`,
      `}`,
      `console.log(JSON.stringify(report));`,
    ].join("\n"),
  );
  const loaded = JSON.parse(out) as Record<string, string[]>;
  for (const [subpath, modules] of Object.entries(loaded)) {
    for (const [feature, pattern] of Object.entries(FEATURE_MODULES)) {
      const own = modules.filter((m) => pattern.test(m));
      if (feature === subpath) expect(own.length).toBeGreaterThan(0);
      else if (!USES[subpath]?.includes(feature))
        expect([subpath, feature, own]).toEqual([subpath, feature, []]);
    }
  }
});

/** A consumer of every subpath: options, types, errors, and an Express app using them. */
const CONSUMER = `
import express from "express";
import { InvalidOptionError } from "express-redis-kit";
import { cacheResponse, type CacheResponseMiddleware } from "express-redis-kit/cache";
import { ClientClosedError, createLockManager, type Lock, requireLock } from "express-redis-kit/lock";
import { createPubSub, type Envelope, sse } from "express-redis-kit/pubsub";
import {
  createRateLimiter,
  ipKeyGenerator,
  type RateLimitResult,
  rateLimit,
  StoreUnavailableError,
} from "express-redis-kit/rate-limit";
import { createSessionStore, type SessionInfo, trackSessions } from "express-redis-kit/session";
const app = express();
const cache: CacheResponseMiddleware = cacheResponse({ ttlMs: 60_000 });
const store = createSessionStore({});
app.use(rateLimit({ limit: 10, windowMs: 60_000, key: (req) => ipKeyGenerator(req.ip ?? "") }));
app.use(trackSessions(store), cache);
app.post("/work/:id", requireLock({ key: (req) => String(req.params.id) }), (_req, res) => {
  res.json({ ok: true });
});
const pubsub = createPubSub({});
app.get("/events", (req, res, next) => {
  sse(req, res, { pubsub, channels: ["news"] }).catch(next);
});
const limiter = createRateLimiter({ policies: [{ limit: 1, windowMs: 1000, algorithm: "gcra" }] });
export const done: Promise<RateLimitResult> = limiter.consume("k");
export const lock: Promise<Lock> = createLockManager({}).acquire("r");
export const sessions: Promise<SessionInfo[]> = store.listUserSessions("u1");
export const errors: Error[] = [
  new InvalidOptionError("bad", "limit"),
  new StoreUnavailableError("down"),
  new ClientClosedError(),
];
export type Message = Envelope;
`;

const tsc = join(root, "node_modules/typescript/bin/tsc");
// skipLibCheck stays off: the package's own .d.ts files are checked too.
const STRICT = ["--noEmit", "--strict", "--types", "node"];
const NODENEXT = [...STRICT, "--module", "nodenext", "--moduleResolution", "nodenext"];

/** tsc's report: `errors` is its output when it fails, "" when the files type-check. */
function typeCheck(flags: string[], files: string[], cwd = dir) {
  const result = spawnSync("node", [tsc, ...flags, ...files], { cwd, encoding: "utf8" });
  return { errors: result.status === 0 ? "" : result.stdout + result.stderr, out: result.stdout };
}
const typeErrors = (flags: string[], files: string[], cwd = dir) =>
  typeCheck(flags, files, cwd).errors;

it("types resolve for ESM and CommonJS consumers of every subpath, and catch misuse", () => {
  writeFileSync(join(dir, "good.mts"), CONSUMER);
  writeFileSync(join(dir, "good.cts"), CONSUMER);
  // Negative controls: a wrong option value, and a name from another subpath, do not type-check.
  writeFileSync(
    join(dir, "bad.mts"),
    [
      'import { rateLimit } from "express-redis-kit/rate-limit";',
      'import { cacheResponse } from "express-redis-kit/lock";',
      'rateLimit({ limit: 10, windowMs: 60_000, algorithm: "leaky" });',
    ].join("\n"),
  );
  // One tsc run: the consumers type-check, and exactly the two misuses are reported.
  const errors = typeErrors(NODENEXT, ["good.mts", "good.cts", "bad.mts"]).trim().split("\n");
  expect(errors).toEqual([
    expect.stringMatching(/^bad\.mts\(2,10\).*has no exported member 'cacheResponse'/),
    expect.stringMatching(/^bad\.mts\(3,42\).*"leaky"/),
  ]);
}, 60_000);

it("types resolve with moduleResolution node10 (typesVersions) and on @types/express 4", () => {
  writeFileSync(join(dir, "node10.ts"), CONSUMER);
  const node10 = ["--module", "commonjs", "--moduleResolution", "node10", "--esModuleInterop"];
  expect(typeErrors([...STRICT, ...node10, "--ignoreDeprecations", "6.0"], ["node10.ts"])).toBe("");
  const e4 = join(dir, "e4");
  writeFileSync(join(e4, "good.mts"), CONSUMER);
  writeFileSync(join(e4, "good.cts"), CONSUMER);
  // The links stay where they are, so "express" is @types/express 4 for every package here.
  const e4Check = typeCheck(
    [...NODENEXT, "--preserveSymlinks", "--listFiles"],
    ["good.mts", "good.cts"],
    e4,
  );
  expect(e4Check.errors).toBe("");
  const listed = e4Check.out;
  expect(listed).toMatch(
    /node_modules\/@types\/express\/node_modules\/@types\/express-serve-static-core/,
  );
  expect(listed).toMatch(/node_modules\/express-redis-kit\/dist\/cjs\/entries\/session\.d\.ts/);
}, 60_000);

it("runs on Express 4: no deprecation printed, the cache hits on host:port", () => {
  const app = `
const express = require("express");
const session = require("express-session");
const { rateLimit } = require("express-redis-kit/rate-limit");
const { cacheResponse } = require("express-redis-kit/cache");
const { requireLock } = require("express-redis-kit/lock");
const { createSessionStore, trackSessions } = require("express-redis-kit/session");
const logger = { info() {}, warn() {}, error() {} };
const store = createSessionStore({ logger });
const app = express();
app.use(rateLimit({ limit: 100, windowMs: 60_000, logger }));
app.use(session({ store, secret: "s", resave: false, saveUninitialized: false }));
app.use(trackSessions(store, { logger }));
app.use(cacheResponse({ ttlMs: 60_000, logger }));
let runs = 0;
app.get("/page", (_req, res) => res.json({ runs: ++runs }));
app.post("/work", requireLock({ key: () => "w", logger }), (_req, res) => res.json({ ok: true }));
app.get("/control", (req, res) => res.send(req.host)); // last: Express 4 prints its deprecation
const server = app.listen(0, "127.0.0.1", async () => {
  const base = "http://127.0.0.1:" + server.address().port;
  const out = [require("express/package.json").version.split(".")[0]];
  for (const [method, path] of [["GET", "/page"], ["GET", "/page"], ["POST", "/work"]]) {
    const res = await fetch(base + path, { method });
    out.push(res.status, res.headers.get("cache-status"), await res.text());
  }
  console.log(JSON.stringify(out));
  console.error("-- control --");
  await fetch(base + "/control");
  server.close();
});
`;
  writeFileSync(join(dir, "e4/app.cjs"), app);
  const result = spawnSync("node", ["app.cjs"], { cwd: join(dir, "e4"), encoding: "utf8" });
  expect(JSON.parse(result.stdout)).toEqual([
    "4",
    ...[200, "express-redis-kit; fwd=uri-miss; stored", '{"runs":1}'],
    ...[200, expect.stringMatching(/^express-redis-kit; hit; ttl=(59|60)$/), '{"runs":1}'],
    ...[200, null, '{"ok":true}'],
  ]);
  // Nothing on stderr before the control; the control's deprecation proves it would show.
  const [before, control] = result.stderr.split("-- control --\n");
  expect(before).toBe("");
  expect(control).toMatch(/^.*express deprecated req\.host: Use req\.hostname instead.*\n$/);
}, 30_000);
