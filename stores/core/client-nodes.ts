/** Parsing of `createRedisClient()`'s node lists (`host:port` strings or objects). */
import { InvalidOptionError } from "./errors.js";
import { show } from "./options.js";

const SCOPE = "createRedisClient";

/** A comma-separated list from the environment, or undefined when unset or empty. */
export function parseList(env: string | undefined): string[] | undefined {
  if (env === undefined || env.trim() === "") return undefined;
  return env
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The `host:port` list of option `name`, checked. */
export function nodesOf(name: string, nodes: unknown): { host: string; port: number }[] {
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new InvalidOptionError(
      `${SCOPE}: ${name} must be a non-empty array of "host:port"`,
      name,
    );
  }
  return nodes.map((node) => parseNode(name, node));
}

function parseNode(name: string, node: unknown): { host: string; port: number } {
  if (typeof node === "object" && node !== null) {
    const { host, port } = node as { host?: unknown; port?: unknown };
    if (typeof host === "string" && Number.isInteger(port)) return { host, port: port as number };
  }
  const match = typeof node === "string" ? /^(.+):(\d{1,5})$/.exec(node) : null;
  if (match === null) {
    throw new InvalidOptionError(
      `${SCOPE}: each of ${name} must be "host:port" or { host, port } (got ${show(node)})`,
      name,
    );
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
}
