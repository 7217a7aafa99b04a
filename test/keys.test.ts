/** Key building: escaping, hashing, bounds and Cluster slots. */
import { keyPart, MAX_TAG_LENGTH } from "../index.js";
import { taggedKey } from "../stores/core/keys.js";
import { closeClients, newCluster } from "./helpers.js";

afterAll(closeClients);

describe("keyPart", () => {
  it("keeps safe keys readable", () => {
    expect(keyPart("203.0.113.7")).toBe("203.0.113.7");
    expect(keyPart("user:42")).toBe("user:42");
  });

  it.each(["{a}", "}{", "a*b", "a?b", "[ab]", "a\r\nb", "a b", "é", "~", "%"])(
    "escapes %j so it cannot move the hash tag or act as a glob",
    (input) => {
      const part = keyPart(input);
      expect(part).not.toMatch(/[{}*?[\]\s\\]/);
      expect(part).not.toBe(input);
    },
  );

  it("hashes long input to a bounded length", () => {
    const part = keyPart("x".repeat(100_000));
    expect(part.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
    expect(part.startsWith("#")).toBe(true);
    expect(keyPart("x".repeat(100_001))).not.toBe(part);
  });

  it("keeps distinct inputs distinct (escaping is injective)", () => {
    const inputs = ["a", "A", "a%", "a%25", "{a}", "%7Ba%7D", "", "~", "\ud800", "\ud801"];
    expect(new Set(inputs.map(keyPart)).size).toBe(inputs.length);
  });

  it("every key of one user key lands in one slot (asked of a real Cluster)", async () => {
    const cluster = newCluster();
    const slot = (key: string) => cluster.cluster("KEYSLOT", key) as Promise<number>;
    const slots = new Set<number>();
    for (const input of ["{a}", "}{x}{", "", "a\r\n", "x".repeat(5000), "plain"]) {
      const base = taggedKey("rl:", input);
      const own = await slot(`${base}:w0`);
      expect(await slot(`${base}:block`)).toBe(own);
      expect(await slot(`${base}:15`)).toBe(own);
      slots.add(own);
    }
    expect(slots.size).toBeGreaterThan(1); // negative control: different user keys spread out
  });
});
