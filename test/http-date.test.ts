/**
 * The cache's field parsers: strict HTTP-date (RFC 9110 §5.6.7), conditional evaluation
 * (RFC 9110 §13.1.2-3) and targeted cache-control fields (RFC 9213 over RFC 8941): table tests
 * of valid and invalid forms, each rule with its negative.
 */
import { matchesAny, notModified } from "../middleware/conditional.js";
import { parseHttpDate } from "../middleware/http-date.js";
import { targetedDirectives } from "../middleware/targeted-field.js";

const NOW = Date.UTC(2026, 11, 4, 12, 0, 0); // Fri, 04 Dec 2026 12:00:00 GMT
const T1994 = Date.UTC(1994, 10, 6, 8, 49, 37);

describe("parseHttpDate: the three forms", () => {
  const valid: [string, number][] = [
    ["Sun, 06 Nov 1994 08:49:37 GMT", T1994], // IMF-fixdate
    ["Sunday, 06-Nov-94 08:49:37 GMT", T1994], // rfc850-date
    ["Sun Nov  6 08:49:37 1994", T1994], // asctime-date, day padded with a space
    ["Thu, 18 Aug 2050 02:01:18 GMT", Date.UTC(2050, 7, 18, 2, 1, 18)],
    ["Mon, 29 Feb 2016 00:00:00 GMT", Date.UTC(2016, 1, 29)], // a leap day
    ["Sat, 01 Jan 2000 23:59:60 GMT", Date.UTC(2000, 0, 2)], // a leap second
    ["Thu Dec 31 23:59:59 2026", Date.UTC(2026, 11, 31, 23, 59, 59)], // asctime, two-digit day
    ["Sun Nov 06 08:49:37 1994", T1994], // asctime, day as 2DIGIT
    ["  Sun, 06 Nov 1994 08:49:37 GMT\t", T1994], // surrounding whitespace is not the value
    ["Mon, 06 Nov 1994 08:49:37 GMT", T1994], // a weekday that does not match: not checked
  ];
  it.each(valid)("%j is a date", (text, expected) => {
    expect(parseHttpDate(text, NOW)).toBe(expected);
  });

  const invalid: [string, string][] = [
    ["Thu, 18 Aug 2050 02:01:18 UTC", "another zone"],
    ["Thu, 18 Aug 2050 02:01:18 AEST", "another zone"],
    ["Thu, 18 Aug 2050 02:01:18 +0000", "a numeric zone"],
    ["Thu, 18 Aug 2050 02:01:18", "no zone"],
    ["Thu 18 Aug 2050 02:01:18 GMT", "no comma after the weekday"],
    ["Thu,  18 Aug 2050 02:01:18 GMT", "two spaces"],
    ["Thu, 18 Aug  2050 02:01:18 GMT", "two spaces"],
    ["Thu, 18-Aug-2050 02:01:18 GMT", "dashes in an IMF-fixdate"],
    ["Thu, 18 Aug 2050 2:01:18 GMT", "a one-digit hour"],
    ["Thu, 8 Aug 2050 02:01:18 GMT", "a one-digit day"],
    ["Thu, 18 Aug 50 02:01:18 GMT", "a two-digit year in an IMF-fixdate"],
    ["Thu, 18 aug 2050 02:01:18 GMT", "a lowercase month"],
    ["thu, 18 Aug 2050 02:01:18 GMT", "a lowercase weekday"],
    ["Thursday, 18 Aug 2050 02:01:18 GMT", "a long weekday in an IMF-fixdate"],
    ["Thu, 18-Aug-50 02:01:18 GMT", "a short weekday in an rfc850-date"],
    ["Thu, 18 Aug 2050 24:00:00 GMT", "hour 24"],
    ["Thu, 18 Aug 2050 02:60:00 GMT", "minute 60"],
    ["Thu, 18 Aug 2050 02:01:61 GMT", "second 61"],
    ["Thu, 32 Aug 2050 02:01:18 GMT", "day 32"],
    ["Thu, 00 Aug 2050 02:01:18 GMT", "day 0"],
    ["Tue, 29 Feb 2050 02:01:18 GMT", "29 February of a common year"],
    ["Thu, 31 Apr 2050 02:01:18 GMT", "31 April"],
    ["Thu Aug 18 02:01:18 2050 GMT", "asctime with a zone"],
    ["0", "a number"],
    ["-1", "a number"],
    ["", "empty"],
    ["2050-08-18T02:01:18Z", "ISO 8601"],
    ["Thu, 18 Aug 2050 02:01:18 GMT, Fri, 19 Aug 2050 02:01:18 GMT", "a list"],
  ];
  it.each(invalid)("%j is not a date (%s)", (text) => {
    expect(parseHttpDate(text, NOW)).toBeUndefined();
    // Negative control: what the cache used before, Date.parse, took most of these.
  });
  it("negative control: Date.parse accepts the loose forms this parser refuses", () => {
    const loose = invalid.filter(([text]) => !Number.isNaN(Date.parse(text)));
    expect(loose.length).toBeGreaterThan(10);
  });

  it("an rfc850 two-digit year more than 50 years ahead is the previous century's (§5.6.7)", () => {
    const at = (yy: string, now = NOW) =>
      new Date(parseHttpDate(`Sunday, 06-Nov-${yy} 08:49:37 GMT`, now)!).getUTCFullYear();
    expect(at("94")).toBe(1994);
    expect(at("26")).toBe(2026);
    expect(at("76")).toBe(2076); // 50 years ahead: still this century
    expect(at("77")).toBe(1977); // 51: the previous
    expect(at("00")).toBe(2000);
    // A clock near a century's end reads a small year as the next century's.
    expect(at("05", Date.UTC(2090, 0, 1))).toBe(2105);
    expect(at("30", Date.UTC(2090, 0, 1))).toBe(2130);
    expect(at("40", Date.UTC(2090, 0, 1))).toBe(2040); // 50 years back: still that century
    expect(at("39", Date.UTC(2090, 0, 1))).toBe(2139); // 51 years back: the next
  });
});

describe("If-None-Match and If-Modified-Since against a stored response", () => {
  const stored = {
    etag: 'W/"abc"',
    lastModified: "Sun, 06 Nov 1994 08:49:37 GMT",
    date: "Mon, 07 Nov 1994 08:49:37 GMT",
  };
  const cases: [string, Record<string, string>, boolean][] = [
    ["matching weak tag", { "if-none-match": 'W/"abc"' }, true],
    ["matching strong form of the tag (weak comparison)", { "if-none-match": '"abc"' }, true],
    ["one of a list", { "if-none-match": '"x", W/"abc" , "y"' }, true],
    ["a list with empty members", { "if-none-match": '"x", , "abc"' }, true],
    ["*", { "if-none-match": "*" }, true],
    ["another tag", { "if-none-match": '"abd"' }, false],
    ["an unquoted tag", { "if-none-match": "abc" }, false],
    ["a malformed list", { "if-none-match": '"abc' }, false],
    // If-None-Match wins: If-Modified-Since is not looked at when it is present.
    [
      "INM not matching, IMS matching",
      { "if-none-match": '"zzz"', "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT" },
      false,
    ],
    ["IMS equal to Last-Modified", { "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT" }, true],
    ["IMS after Last-Modified", { "if-modified-since": "Mon, 07 Nov 1994 00:00:00 GMT" }, true],
    ["IMS before Last-Modified", { "if-modified-since": "Sun, 06 Nov 1994 08:49:36 GMT" }, false],
    ["IMS in an obsolete form", { "if-modified-since": "Sunday, 06-Nov-94 08:49:37 GMT" }, true],
    ["IMS invalid (UTC zone)", { "if-modified-since": "Sun, 06 Nov 1994 08:49:37 UTC" }, false],
    ["IMS invalid (no comma)", { "if-modified-since": "Sun 06 Nov 1994 08:49:37 GMT" }, false],
    [
      "IMS with two members",
      { "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT" },
      false,
    ],
    ["no condition", {}, false],
    // Request directives play no part: the lookup already decided the entry may be used.
    [
      "INM with Cache-Control: no-cache",
      { "if-none-match": '"abc"', "cache-control": "no-cache" },
      true,
    ],
  ];
  it.each(cases)("%s", (_what, headers, expected) => {
    expect(notModified(headers, stored, NOW)).toBe(expected);
  });

  it("without Last-Modified, If-Modified-Since is compared with the stored Date (RFC 9111 §4.3.2)", () => {
    const noLm = { etag: undefined, lastModified: undefined, date: stored.date };
    expect(notModified({ "if-modified-since": stored.date }, noLm, NOW)).toBe(true);
    expect(notModified({ "if-modified-since": stored.lastModified }, noLm, NOW)).toBe(false);
  });

  it("a stored response without an ETag matches only *", () => {
    expect(matchesAny('"abc"', undefined)).toBe(false);
    expect(matchesAny("*", undefined)).toBe(true);
  });
});

describe("targeted field (CDN-Cache-Control) as a Structured Field Dictionary", () => {
  const valid: [string, [string, string | true][]][] = [
    ["max-age=60", [["max-age", "60"]]],
    [
      "max-age=60, no-store",
      [
        ["max-age", "60"],
        ["no-store", true],
      ],
    ],
    [
      "s-maxage=0,must-revalidate",
      [
        ["s-maxage", "0"],
        ["must-revalidate", true],
      ],
    ],
    ["max-age=60;ignored=1", [["max-age", "60"]]], // parameters play no part
    ['no-cache="set-cookie"', [["no-cache", "set-cookie"]]],
    ["private", [["private", true]]],
    [
      "x-ext, max-age=5",
      [
        ["x-ext", true],
        ["max-age", "5"],
      ],
    ], // an unknown directive: kept
    ["x-ext=?0, max-age=5", [["max-age", "5"]]], // false says nothing
    ["max-age=1.5, max-age=10", [["max-age", "10"]]], // a repeated key: the last one counts
    [
      'x="a,max-age=1.5", max-age=10',
      [
        ["x", "a,max-age=1.5"],
        ["max-age", "10"],
      ],
    ],
  ];
  it.each(valid)("%j parses", (value, expected) => {
    expect([...targetedDirectives(value)!]).toEqual(expected);
  });
  const invalid: [string, string][] = [
    ["max-age=10000, &&&&&", "not a Dictionary"],
    ["max-age=60,", "a trailing comma"],
    ["Max-Age=60", "an uppercase key"],
    ['max-age="60"', "a String where an Integer is due"],
    ["max-age=60.5", "a Decimal"],
    ["max-age=-1", "a negative Integer"],
    ["max-age=(1 2)", "an Inner List"],
    ["no-store=?0", "false where only true means anything"],
    ["no-store=1", "an Integer for a flag"],
    ["private=10", "an Integer for field names"],
    ["", "empty"],
    ["   ", "blank"],
  ];
  it.each(invalid)("%j is ignored as a whole (%s)", (value) => {
    expect(targetedDirectives(value)).toBeUndefined();
  });
  it("absent: undefined (Cache-Control applies)", () => {
    expect(targetedDirectives(undefined)).toBeUndefined();
  });
});
