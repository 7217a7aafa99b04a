/**
 * The benchmark's child processes: every one tracked and killed on exit, error or signal; the
 * server under test pinned to CPU 0 and the load generator and Redis to CPU 1.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { freePort, type RedisServer } from "../test/harness/redis-server.js";
import { config, ROOT, SERVER_READY_TIMEOUT_MS, STOP_TIMEOUT_MS } from "./config.js";

/** Every child process alive, killed on exit. */
export const children = new Set<ChildProcess>();

/** State shared with the runner: the Redis it started, and whether a signal asked to stop. */
export const state: { redisPid?: number; redisServer?: RedisServer; interrupted: boolean } = {
  interrupted: false,
};

/** Kills every child and the Redis server at once (on exit). */
export function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  children.clear();
  if (state.redisPid !== undefined) {
    try {
      process.kill(state.redisPid, "SIGKILL");
    } catch {
      // already gone
    }
    state.redisPid = undefined;
  }
}

process.on("exit", killAllNow);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (state.interrupted) return;
    state.interrupted = true;
    process.stderr.write(`\n${signal}: stopping children and exiting\n`);
    for (const child of children) child.kill("SIGKILL");
    const stopped = state.redisServer?.stop() ?? Promise.resolve();
    const timer = new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
    void Promise.race([stopped, timer]).finally(() => process.exit(130));
  });
}

const tasksetPath = (() => {
  const found = spawnSync("sh", ["-c", "command -v taskset"], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
})();
/** Whether processes are pinned to CPUs. */
export const pinning = config.pin && tasksetPath !== undefined && availableParallelism() >= 2;

/** Spawns `command args`, under `taskset -c cpu` when pinning, and tracks the child. */
export function spawnTracked(cpu: number, command: string, args: string[]): ChildProcess {
  const child = pinning
    ? spawn(tasksetPath!, ["-c", String(cpu), command, ...args], { cwd: ROOT, stdio: "pipe" })
    : spawn(command, args, { cwd: ROOT, stdio: "pipe" });
  children.add(child);
  child.once("exit", () => children.delete(child));
  child.once("error", () => children.delete(child));
  return child;
}

/** Resolves true when `child` exits within `timeoutMs`, else false. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Stops `child` (SIGTERM, then SIGKILL). */
export async function stopChild(child: ChildProcess): Promise<void> {
  child.stdin?.end();
  child.kill("SIGTERM");
  if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
    child.kill("SIGKILL");
    await waitExit(child, STOP_TIMEOUT_MS);
  }
  children.delete(child);
}

// ---------------------------------------------------------------------------------------------
// The server under test and the load generator.

/** A running benchmark server. */
export interface ServerHandle {
  child: ChildProcess;
  port: number;
  /** What the server wrote to stderr so far (the first 20,000 characters). */
  log(): string;
}

/**
 * Starts `bench/<script>` with `args` and a free port (its last argument), and waits for it to
 * print READY. `label` names it in errors.
 */
export async function startServer(
  label: string,
  script: "server.ts" | "cache-server.ts",
  args: string[],
): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawnTracked(0, process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "bench", script),
    ...args,
    String(port),
  ]);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server ${label} not ready after ${SERVER_READY_TIMEOUT_MS} ms`)),
        SERVER_READY_TIMEOUT_MS,
      );
      child.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("READY")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(`server ${label} exited (${code ?? signal}) before ready:\n${stderr.trim()}`),
        );
      });
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, port, log: () => stderr };
}

/** Records the Redis server's pid (to kill it on exit) and pins it to CPU 1. */
export function pinRedis(admin: Redis): Promise<void> {
  return admin.info("server").then((text) => {
    const pid = Number(/process_id:(\d+)/.exec(text)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) return;
    state.redisPid = pid;
    if (pinning) spawnSync(tasksetPath!, ["-pc", "1", String(pid)], { stdio: "ignore" });
  });
}
