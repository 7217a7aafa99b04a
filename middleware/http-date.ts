/**
 * Strict HTTP-date parsing (RFC 9110 §5.6.7), the one parser of `Date`, `Expires`,
 * `Last-Modified` and `If-Modified-Since` in the cache.
 *
 * Three forms only, case and spacing exactly as the grammar writes them:
 *   IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT    (obsolete; two-digit year)
 *   asctime-date  Sun Nov  6 08:49:37 1994          (obsolete; day padded with a space)
 * Anything else (another zone, a missing comma, extra or missing spaces, dashes in an
 * IMF-fixdate, a one-digit hour, a field out of range, a day the month does not have) is not a
 * date. Hours run 00-23, minutes 00-59, seconds 00-60 (a leap second, counted as the next
 * second's start). The day name is checked for its form (short or long) but not against the
 * date, as the RFC does not ask recipients to.
 */

const MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec";
const MONTH_INDEX = new Map(MONTHS.split("|").map((name, i) => [name, i]));
const DAY = "Mon|Tue|Wed|Thu|Fri|Sat|Sun";
const DAY_LONG = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";

/** day, month, year, hour, minute, second */
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d{2}) (${MONTHS}) (\\d{4}) ${TIME} GMT$`);
/** day, month, two-digit year, hour, minute, second */
const RFC850 = new RegExp(`^(?:${DAY_LONG}), (\\d{2})-(${MONTHS})-(\\d{2}) ${TIME} GMT$`);
/** month, day, hour, minute, second, year */
const ASCTIME = new RegExp(`^(?:${DAY}) (${MONTHS}) ((?:\\d| )\\d) ${TIME} (\\d{4})$`);

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/**
 * The time `value` names, in ms since the epoch, or `undefined` when it is not an HTTP-date.
 * Leading and trailing spaces and tabs (not part of a field value) are ignored. `now` is the
 * clock a two-digit year is read against: a year that would be more than 50 years ahead of it
 * is the most recent past year with the same last two digits.
 */
export function parseHttpDate(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.replace(/^[ \t]+|[ \t]+$/g, "");
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return build(+m[3]!, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  m = ASCTIME.exec(text);
  if (m !== null) return build(+m[6]!, m[1]!, +m[2]!.trim(), +m[3]!, +m[4]!, +m[5]!);
  m = RFC850.exec(text);
  if (m === null) return undefined;
  // A year more than 50 years ahead is the previous century's (and one more than 50 years
  // behind the next century's, for a clock near a century's end).
  const thisYear = new Date(now).getUTCFullYear();
  let year = thisYear - (thisYear % 100) + +m[3]!;
  if (year > thisYear + 50) year -= 100;
  else if (year < thisYear - 50) year += 100;
  return build(year, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
}

/** The time of a calendar date, or `undefined` when a field is out of range. */
function build(
  year: number,
  monthName: string,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number | undefined {
  const month = MONTH_INDEX.get(monthName)!;
  if (hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  if (day > DAYS_IN_MONTH[month]! + (month === 1 && isLeap(year) ? 1 : 0)) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month, day); // years 0-99 are years, not 1900 + y
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

/** `ms` as an IMF-fixdate (what `Date.prototype.toUTCString` writes). */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}
