/**
 * The packed tarball: `npm pack`, install it into a temporary project, then `require` it,
 * `import` it, and type-check a consumer in both module systems.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(__dirname, "..");
let dir: string;

const run = (command: string, args: string[], cwd = dir) =>
  execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

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
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it("ships only dist/ and the package files", () => {
  const files = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], root);
  const paths: string[] = JSON.parse(files)[0].files.map((f: { path: string }) => f.path);
  expect(paths.filter((p) => !p.startsWith("dist/")).sort()).toEqual([
    "LICENSE",
    "README.md",
    "package.json",
  ]);
  expect(paths).toContain("dist/esm/index.js");
  expect(paths).toContain("dist/cjs/index.d.ts");
}, 60_000);

it("require() works", () => {
  const out = run("node", [
    "-e",
    "const k = require('express-redis-kit'); console.log(typeof k.rateLimit, typeof k.createRateLimiter, typeof k.redisHealth)",
  ]);
  expect(out.trim()).toBe("function function function");
});

it("no client library is installed with it: each is an optional peer, loaded only when asked for", () => {
  const out = run("node", [
    "-e",
    [
      "const k = require('express-redis-kit');",
      "let caught; try { k.createRedisClient({ client: 'node-redis' }) } catch (e) { caught = e }",
      "console.log(require('fs').existsSync('node_modules/ioredis'), require('fs').existsSync('node_modules/redis'), caught.code, caught.message)",
    ].join("\n"),
  ]);
  expect(out.trim()).toBe(
    'false false ERK_INVALID_OPTION createRedisClient: client "node-redis" needs the redis package, which is not installed: npm install redis',
  );
});

it("import works, and shares one copy of the code with require()", () => {
  const out = run("node", [
    "--input-type=module",
    "-e",
    [
      "import { rateLimit, InvalidOptionError } from 'express-redis-kit';",
      "import { createRequire } from 'node:module';",
      "const cjs = createRequire(import.meta.url)('express-redis-kit');",
      "let caught; try { rateLimit({ windowMs: -5, limit: 1 }) } catch (e) { caught = e }",
      "console.log(typeof rateLimit, cjs.InvalidOptionError === InvalidOptionError, caught instanceof cjs.InvalidOptionError)",
    ].join("\n"),
  ]);
  expect(out.trim()).toBe("function true true");
});

it("types resolve for ESM and CommonJS consumers, and catch misuse", () => {
  const good = [
    'import { rateLimit, createRateLimiter, type RateLimitResult } from "express-redis-kit";',
    "const mw = rateLimit({ limit: 10, windowMs: 60_000, headers: 'draft-8' });",
    "const limiter = createRateLimiter({ policies: [{ limit: 1, windowMs: 1000, algorithm: 'gcra' }] });",
    "export const done: Promise<RateLimitResult> = limiter.consume('k');",
    "export const reset: Promise<void> = mw.reset('k');",
  ].join("\n");
  writeFileSync(join(dir, "good.mts"), good);
  writeFileSync(join(dir, "good.cts"), good);
  writeFileSync(
    join(dir, "bad.mts"),
    'import { rateLimit } from "express-redis-kit";\nrateLimit({ limit: 10, windowMs: 60_000, algorithm: "leaky" });\n',
  );
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const flags = [
    "--noEmit",
    "--strict",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--types",
    "node",
  ];
  run("node", [tsc, ...flags, "good.mts", "good.cts"]);
  // Negative control: a wrong option value must not type-check (types are not `any`).
  let output = "";
  try {
    run("node", [tsc, ...flags, "bad.mts"]);
  } catch (err) {
    output = String((err as { stdout?: string }).stdout);
  }
  expect(output).toMatch(/bad\.mts.*"leaky"/);
}, 60_000);
