// Builds dist/: CommonJS from tsc, plus a thin ESM wrapper that re-exports the same module,
// so `import` and `require` share one copy of the code (one error class, one script registry).
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n');

const names = Object.keys(createRequire(import.meta.url)("../dist/cjs/index.js")).filter(
  (name) => name !== "__esModule" && name !== "default",
);
mkdirSync("dist/esm", { recursive: true });
writeFileSync(
  "dist/esm/index.js",
  `import kit from "../cjs/index.js";\nexport const { ${names.join(", ")} } = kit;\nexport default kit;\n`,
);
writeFileSync("dist/esm/index.d.ts", 'export * from "../cjs/index.js";\n');
console.log(`built dist/cjs and dist/esm (${names.length} exports)`);
