import { Slot } from "../middleware/slot.js";

class Request {
  url = "/";
}

it("a slot reads and writes like a property, per object, without an own property", () => {
  const slot = new Slot<number>("rateLimit");
  const a = new Request() as Request & { rateLimit?: number };
  const b = new Request() as Request & { rateLimit?: number };
  slot.set(a, 1);
  expect(a.rateLimit).toBe(1);
  expect(b.rateLimit).toBeUndefined();
  expect(Object.hasOwn(a, "rateLimit")).toBe(false);
  b.rateLimit = 2; // user code assigning goes through the same accessor
  expect(b.rateLimit).toBe(2);
  expect(a.rateLimit).toBe(1);
  slot.set(a, 3);
  expect(a.rateLimit).toBe(3);
});

it("leaves a prototype that already defines the name alone: an ordinary property instead", () => {
  class Other {
    get lock() {
      return "theirs";
    }
  }
  class Plain {}
  const slot = new Slot<string>("lock");
  const other = new Other();
  expect(() => slot.set(other, "ours")).toThrow(TypeError); // their getter has no setter
  expect(other.lock).toBe("theirs");
  const plain = new Plain() as Plain & { lock?: string };
  slot.set(plain, "ours"); // a second prototype gets its own accessor
  expect(plain.lock).toBe("ours");
  expect(Object.hasOwn(plain, "lock")).toBe(false);
  const frozen = Object.create(Object.freeze({})) as { lock?: string };
  slot.set(frozen, "own");
  expect(frozen.lock).toBe("own");
  expect(Object.hasOwn(frozen, "lock")).toBe(true); // negative control: no accessor there
});
