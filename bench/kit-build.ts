/**
 * The library as the benchmark measures it: the working tree compiled by `tsc` (the CommonJS
 * build `npm run build` makes) into a private directory that looks like an installed package
 * (`package.json` whose main is `dist/cjs/index.js`, `node_modules` linked to the checkout's),
 * so every run measures the code as it is now, without touching `dist/` (which tests and the
 * profiling scripts use). Its path goes to the servers and workers in `KIT_DIR_ENV`; they load
 * the library from it (`scenario.ts`), as ../shared/peer-bench loads a checkout.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KIT_DIR_ENV, PROJECT_DIR } from "./scenario.js";

/** Compiles the library into a new temporary directory; returns it. Throws on a compile error. */
export function buildKit(): string {
  const dir = mkdtempSync(join(tmpdir(), "erk-bench-kit-"));
  const result = spawnSync(
    process.execPath,
    [
      join(PROJECT_DIR, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      join(PROJECT_DIR, "tsconfig.build.json"),
      "--outDir",
      join(dir, "dist", "cjs"),
      "--declaration",
      "false",
    ],
    { cwd: PROJECT_DIR, encoding: "utf8" },
  );
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `the library does not compile (tsc -p tsconfig.build.json):\n${result.stdout}${result.stderr}`,
    );
  }
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify({ name: "express-redis-kit", private: true, main: "./dist/cjs/index.js" })}\n`,
  );
  mkdirSync(join(dir, "dist", "cjs"), { recursive: true });
  writeFileSync(join(dir, "dist", "cjs", "package.json"), '{ "type": "commonjs" }\n');
  symlinkSync(join(PROJECT_DIR, "node_modules"), join(dir, "node_modules"), "dir");
  process.env[KIT_DIR_ENV] = dir;
  return dir;
}

/** Removes a directory `buildKit()` made. */
export function removeKit(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
