/**
 * The response body every benchmark server answers: JSON of exactly 1024 bytes as `res.json()`
 * sends it, the size ../shared/peer-bench's servers answer, so the two harnesses do the same
 * work per response.
 */

/** The size of `BODY` serialized, bytes. */
export const BODY_BYTES = 1024;

function makeBody() {
  const body = {
    status: "ok",
    page: 1,
    items: Array.from({ length: 10 }, (_, i) => ({
      id: 1000 + i,
      name: `product-${i}`,
      price: Math.round((9.99 + i * 3.5) * 100) / 100,
      tags: ["bench", "json", `tag-${i}`],
      inStock: i % 2 === 0,
    })),
    pad: "",
  };
  body.pad = "x".repeat(BODY_BYTES - JSON.stringify(body).length);
  if (Buffer.byteLength(JSON.stringify(body)) !== BODY_BYTES)
    throw new Error("bench body is not 1024 bytes");
  return body;
}

export const BODY = makeBody();

/** `BODY` as `res.json()` sends it. */
export const BODY_TEXT = JSON.stringify(BODY);
