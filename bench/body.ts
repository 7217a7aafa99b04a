/**
 * The response body every benchmark server answers: about 1 KB of JSON.
 */
export const BODY = {
  status: "ok",
  page: 1,
  items: Array.from({ length: 11 }, (_, i) => ({
    id: 1000 + i,
    name: `product-${i}`,
    price: Math.round((9.99 + i * 3.5) * 100) / 100,
    tags: ["bench", "json", `tag-${i}`],
    inStock: i % 2 === 0,
  })),
};

/** `BODY` as `res.json()` sends it. */
export const BODY_TEXT = JSON.stringify(BODY);
