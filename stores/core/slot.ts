/**
 * The Redis Cluster hash slot of a key (Cluster specification, "Keys distribution model"):
 * CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key's hash tag, or of the whole
 * key when it has none, modulo 16384. Used only to find the master a key lives on when a
 * command that names no key (WAIT) must reach it.
 */

const TABLE = new Uint16Array(256);
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  TABLE[byte] = crc & 0xffff;
}

/** CRC16/XMODEM of `bytes`. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/**
 * The slot of `key` (as the server sees it, any client key prefix included). A hash tag is the
 * part between the first `{` and the next `}`, when that part is not empty.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384;
  }
  return crc16(bytes) % 16384;
}
