/**
 * The benchmark's child processes: every one tracked and killed on exit, error or signal; the
 * server under test (and the lock workers) pinned to CPU 0, the load generator and Redis to
 * CPU 1.
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

/**
 * Spawns `command args` (with `env` added to this process's environment), under
 * `taskset -c cpu` when pinning, and tracks the child.
 */
export function spawnTracked(
  cpu: number,
  command: string,
  args: string[],
  env?: Record<string, string>,
): ChildProcess {
  const options = {
    cwd: ROOT,
    stdio: "pipe" as const,
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  };
  const child = pinning
    ? spawn(tasksetPath!, ["-c", String(cpu), command, ...args], options)
    : spawn(command, args, options);
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
 * Starts `bench/http-server.ts` with `args` and a free port (its last argument) on CPU 0, and
 * waits for it to print READY. `label` names it in errors.
 */
export async function startServer(label: string, args: string[]): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawnTracked(0, process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "bench", "http-server.ts"),
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

// ---------------------------------------------------------------------------------------------
// Worker processes that answer commands line by line (the lock benchmark's).

/** A running worker: commands go to its stdin, replies come from its stdout, one per line. */
export interface LineWorker {
  child: ChildProcess;
  /** Writes `line` (and a newline) to the worker's stdin. */
  send(line: string): void;
  /** The next stdout line that starts with the worker's reply mark (the mark removed). */
  next(timeoutMs: number): Promise<string>;
  /** What the worker wrote to stderr, and stdout lines that were not replies (20,000 characters at most). */
  log(): string;
}

/**
 * Starts `node --import tsx bench/<script> ...args` pinned to `cpu`, and waits for it to print
 * READY. Lines it prints that start with `mark` are replies; every other line is log. `label`
 * names it in errors.
 */
export async function startLineWorker(
  label: string,
  script: string,
  args: string[],
  mark: string,
  cpu = 0,
): Promise<LineWorker> {
  const child = spawnTracked(cpu, process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "bench", script),
    ...args,
  ]);
  let log = "";
  const keep = (text: string) => {
    if (log.length < 20_000) log += text;
  };
  const replies: string[] = [];
  const waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  let ready: (() => void) | undefined;
  let gone: Error | undefined;
  let partial = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.startsWith(mark)) {
        const reply = line.slice(mark.length);
        const waiter = waiting.shift();
        if (waiter === undefined) replies.push(reply);
        else waiter.resolve(reply);
      } else if (line === "READY" && ready !== undefined) {
        ready();
        ready = undefined;
      } else {
        keep(`${line}\n`);
      }
    }
  });
  child.stderr?.on("data", (chunk: Buffer) => keep(chunk.toString()));
  const onGone = (why: string) => {
    gone = new Error(`worker ${label} ${why}:\n${log.trim()}`);
    for (const waiter of waiting.splice(0)) waiter.reject(gone);
  };
  child.once("exit", (code, signal) => onGone(`exited (${code ?? signal})`));
  child.once("error", (error) => onGone(`failed to start (${error.message})`));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker ${label} not ready after ${SERVER_READY_TIMEOUT_MS} ms`)),
        SERVER_READY_TIMEOUT_MS,
      );
      ready = () => {
        clearTimeout(timer);
        resolve();
      };
      child.once("exit", () => {
        clearTimeout(timer);
        reject(gone ?? new Error(`worker ${label} exited before ready`));
      });
    });
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return {
    child,
    send: (line) => {
      child.stdin?.write(`${line}\n`);
    },
    next: (timeoutMs) => {
      const queued = replies.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (gone !== undefined) return Promise.reject(gone);
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiting.indexOf(waiter);
          if (i !== -1) waiting.splice(i, 1);
          reject(new Error(`worker ${label} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = {
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
          reject: (error: Error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        waiting.push(waiter);
      });
    },
    log: () => log,
  };
}
