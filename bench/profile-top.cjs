"use strict";
// Summarizes the .cpuprofile files in a directory (bench/profile.sh writes them): the top
// functions by self time, as a share of all samples, with their file and line.
//   node bench/profile-top.cjs <dir> [top = 25]
const { readdirSync, readFileSync } = require("node:fs");
const { join, relative } = require("node:path");

const [dir, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const self = new Map();
let total = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8"));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, n] of counts) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const where = url
      ? `${relative(process.cwd(), url.replace(/^file:\/\//, ""))}:${lineNumber + 1}`
      : "";
    const name = `${functionName || "(anonymous)"} ${where}`.trim();
    self.set(name, (self.get(name) ?? 0) + n);
    total += n;
  }
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [name, n] of rows)
  console.log(`${((100 * n) / total).toFixed(1).padStart(5)} %  ${name}`);
console.log(`(${total} samples)`);
