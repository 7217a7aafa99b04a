/**
 * What an HTTP benchmark scenario is: the shape ../shared/peer-bench's servers take (a setup that
 * returns the middleware mounted in front of GET /api, optional extra routes, a prime step that
 * returns the headers the load sends, a close), so this library's scenarios in
 * `bench/peer-scenarios.cjs` run here unchanged: one definition serves both harnesses.
 *
 * The library is loaded as a package (`require` of its directory, as peer-scenarios.cjs does):
 * the runner's fresh build of the working tree (`kit-build.ts`), so every scenario measures the
 * same code, the code as it is now.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Express, RequestHandler } from "express";
import type { Redis, RedisOptions } from "ioredis";

/** The repository root. */
export const PROJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where `npm run bench` tells its servers and workers the library's build is (`kit-build.ts`). */
export const KIT_DIR_ENV = "ERK_BENCH_KIT_DIR";

/**
 * The package the scenarios load (`ctx.projectDir` for peer-scenarios.cjs): the runner's build
 * of the working tree, or, when a server is started by hand, this checkout (its `dist/`).
 */
export function kitDir(): string {
  return process.env[KIT_DIR_ENV] || PROJECT_DIR;
}

/** CommonJS `require` from bench/: the peers as ../shared/peer-bench loads them. */
export const requireCjs = createRequire(import.meta.url);

/** This library as the scenarios load it (`require` of the package `kitDir()`). */
export function kitLib(): typeof import("../index.js") {
  return requireCjs(kitDir()) as typeof import("../index.js");
}

/** A limit no run reaches, so nothing is ever rejected (except in the floods). */
export const HUGE = 1e9;

/** What a scenario's setup is given (peer-bench's `ctx`, plus the command counter). */
export interface ScenarioContext {
  /**
   * A client on the run's Redis, counted and closed by the server: ioredis with `options`, or,
   * for a scenario run on node-redis, the one node-redis client `createClient({ url })`.
   */
  newRedis(options?: RedisOptions): Redis;
  /** The package peer-scenarios.cjs requires (`kitDir()`: its package.json main is the build). */
  projectDir: string;
  /** Commands sent so far by every client `newRedis()` made (one per round trip). */
  sent(): number;
}

/** What a scenario's setup returns (peer-bench's shape, plus `sample`). */
export interface ScenarioSetup {
  /** Mounted in front of the handlers of GET /api, GET /slow and POST /api. */
  mw: RequestHandler[];
  /** Extra routes (e.g. GET /login). */
  routes?(app: Express): void;
  /** Run by GET /__prime: the headers every load request sends, `Name: value`. */
  prime?(baseUrl: string): Promise<string[]>;
  close?(): unknown;
  /** Extra fields for GET /__cpu (store call counts, cache stats). */
  sample?(): Record<string, unknown>;
}

export type Setup = (ctx: ScenarioContext) => Promise<ScenarioSetup>;

/** One measured row: what it is, where it comes from, and how to set it up. */
export interface Scenario {
  /** What the report's table calls it. */
  label: string;
  /** The same scenario's id in ../shared/peer-bench (its peers.js or our peer-scenarios.cjs). */
  peerBench?: string;
  /** `node-redis`: `ctx.newRedis()` gives a node-redis 6 client (default options, RESP3). */
  client?: "node-redis";
  setup: Setup;
}

type PeerScenarioFile = Record<string, { label: string; setup: Setup } | undefined>;

/**
 * The setup of `name` in bench/peer-scenarios.cjs (this library's scenarios for the shared
 * harness), loaded when it runs.
 */
export function peerScenario(name: string): Setup {
  return (ctx) => {
    const all = requireCjs("./peer-scenarios.cjs") as PeerScenarioFile;
    const scenario = all[name];
    if (scenario === undefined) throw new Error(`bench/peer-scenarios.cjs has no ${name}`);
    return scenario.setup(ctx);
  };
}

/** `setup` with `sample` added from what it returned. */
export function withSample(
  setup: Setup,
  sample: (made: ScenarioSetup) => () => Record<string, unknown>,
): Setup {
  return async (ctx) => {
    const made = await setup(ctx);
    return { ...made, sample: sample(made) };
  };
}

/** The handlers behind a scenario's middleware on the server (the keys of `handlerCalls`). */
export const HANDLERS = ["GET /api", "GET /slow", "POST /api"] as const;
export type Handler = (typeof HANDLERS)[number];

/** How long the server's GET /slow waits before it answers, ms. */
export const SLOW_MS = 20;

/** What the server's GET /__cpu answers (plus the scenario's `sample()` fields). */
export interface ServerSample {
  user: number;
  system: number;
  /** GET/POST /api and GET /slow requests received (the divisor of every per-request figure). */
  received: number;
  handlerCalls: Record<Handler, number>;
  /** Commands the scenario's Redis clients sent (one per round trip). */
  redisSent: number;
}
