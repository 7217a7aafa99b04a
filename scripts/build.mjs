// Builds dist/: CommonJS from tsc, plus thin ESM wrappers that re-export the same modules, so
// `import` and `require` of the root and of every subpath share one copy of the code (one
// error class, one script registry). The subpaths are those of package.json's `exports`.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

/** Subpath (without "./") → its CommonJS module under dist/cjs, from package.json's exports. */
function entries() {
  const pkg = JSON.parse(readFileSync("package.json", "utf8"));
  const out = {};
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === "string") continue; // ./package.json
    const name = subpath === "." ? "index" : subpath.slice(2);
    const cjs = target.require.default.replace(/^\.\/dist\/cjs\//, "");
    const esm = target.import.default;
    if (esm !== `./dist/esm/${name}.js`) throw new Error(`exports["${subpath}"]: ESM at ${esm}`);
    if (target.import.types !== `./dist/esm/${name}.d.ts`)
      throw new Error(`exports["${subpath}"]: ESM types at ${target.import.types}`);
    if (target.require.types !== target.require.default.replace(/\.js$/, ".d.ts"))
      throw new Error(`exports["${subpath}"]: CommonJS types at ${target.require.types}`);
    out[name] = cjs;
  }
  return out;
}

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n');
mkdirSync("dist/esm", { recursive: true });

const require = createRequire(import.meta.url);
const built = [];
for (const [name, cjs] of Object.entries(entries())) {
  const names = Object.keys(require(`../dist/cjs/${cjs}`)).filter(
    (key) => key !== "__esModule" && key !== "default",
  );
  if (names.length === 0) throw new Error(`dist/cjs/${cjs} exports nothing`);
  writeFileSync(
    `dist/esm/${name}.js`,
    `import kit from "../cjs/${cjs}";\nexport const { ${names.join(", ")} } = kit;\nexport default kit;\n`,
  );
  writeFileSync(`dist/esm/${name}.d.ts`, `export * from "../cjs/${cjs}";\n`);
  built.push(`${name} (${names.length})`);
}
console.log(`built dist/cjs and dist/esm: ${built.join(", ")}`);
