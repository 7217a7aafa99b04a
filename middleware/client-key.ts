/**
 * The default rate limit key: the client's IP address, as Express resolved it (`req.ip`,
 * which honours `trust proxy`), with IPv4-mapped IPv6 unwrapped and IPv6 grouped by subnet,
 * since one IPv6 user usually holds a whole /56 or /64.
 */

import { isIP } from "node:net";
import type { Request } from "express";
import ipaddr from "ipaddr.js";
import type { Warnings } from "../stores/core/logger.js";

/** Normalises an IP address: IPv4-mapped IPv6 → IPv4; IPv6 → its `/subnet` network. */
export function normalizeIp(ip: string, subnet: number | false): string {
  const family = isIP(ip);
  if (family === 4) return ip; // the common case, without parsing
  if (family === 0) return ip;
  const address = ipaddr.parse(ip);
  if (address.kind() === "ipv4") return address.toString();
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  if (subnet === false || subnet >= 128) return v6.toString();
  const bytes = v6.toByteArray();
  for (let bit = subnet; bit < 128; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${subnet}`;
}

/**
 * express-rate-limit's helper, same contract: the key of one IP address, IPv4-mapped IPv6
 * unwrapped and IPv6 grouped by its `/ipv6Subnet` network. Use it in a custom `key` that mixes
 * the IP with something else: `key: (req) => \`${req.params.tenant}:${ipKeyGenerator(req.ip!)}\``.
 */
export function ipKeyGenerator(ip: string, ipv6Subnet: number | false = 56): string {
  return normalizeIp(ip, ipv6Subnet);
}

/** Builds the default `key(req)`: the normalised client IP, with misuse warnings logged once. */
export function clientIpKey(subnet: number | false, warnings: Warnings): (req: Request) => string {
  return function ipKey(req: Request): string {
    if (req.headers["x-forwarded-for"] !== undefined && req.app?.get("trust proxy") === false) {
      warnings.once(
        "ERK_XFF_IGNORED",
        "a request carries X-Forwarded-For but Express's `trust proxy` is off, so every client behind the proxy shares one rate limit key; set app.set('trust proxy', <hops>) (see README: Guidance)",
      );
    }
    const ip = req.ip ?? req.socket?.remoteAddress;
    if (ip === undefined || ip === "") {
      warnings.once(
        "ERK_NO_IP",
        "req.ip is undefined (the socket closed?); such requests share the key 'unknown-ip'",
      );
      return "unknown-ip";
    }
    return normalizeIp(ip, subnet);
  };
}
