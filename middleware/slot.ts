/**
 * Per-request properties (`req.rateLimit`, `req.lock`, …) without an own property per request.
 *
 * Adding a property to Node's request or response object costs a hidden-class transition and a
 * larger property store on every request: measured at 1–4 µs, a sizeable share of a middleware
 * whose whole budget is a few µs. Instead, the first assignment installs an accessor on the
 * object's prototype (Express's per-app `app.request` / `app.response`) that keeps the values
 * in a WeakMap: `req.rateLimit` reads and writes as before, for us and for user code, and a
 * request's value goes with the request.
 *
 * A prototype that already defines the name (another library's accessor) is left alone: the
 * value is then assigned as an ordinary property.
 */

/** A named per-object slot; see the module comment. One instance per name, at module level. */
export class Slot<T> {
  private readonly values = new WeakMap<object, T>();
  private readonly installed = new WeakMap<object, boolean>();
  private lastProto: object | null = null;
  private lastOk = false;

  constructor(private readonly name: string) {}

  /** Sets `target[name] = value`. */
  set(target: object, value: T): void {
    const proto = Object.getPrototypeOf(target) as object | null;
    if (proto !== this.lastProto) {
      this.lastProto = proto;
      this.lastOk = proto !== null && this.install(proto);
    }
    if (this.lastOk && !Object.hasOwn(target, this.name)) this.values.set(target, value);
    else (target as Record<string, unknown>)[this.name] = value;
  }

  private install(proto: object): boolean {
    const known = this.installed.get(proto);
    if (known !== undefined) return known;
    let ok = false;
    if (!(this.name in proto) && Object.isExtensible(proto)) {
      const { values } = this;
      Object.defineProperty(proto, this.name, {
        configurable: true,
        enumerable: false,
        get(this: object) {
          return values.get(this);
        },
        set(this: object, value: T) {
          values.set(this, value);
        },
      });
      ok = true;
    }
    this.installed.set(proto, ok);
    return ok;
  }
}
