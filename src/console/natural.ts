/**
 * Names in the order a person expects: runs of digits compare as numbers, so h2 comes
 * before h10 and 10.0.0.9 before 10.0.0.10; letters compare without regard to case. The
 * web console lists and lays out hosts, ports, networks and routers in this order.
 *
 *   h1 h2 h9 h10 h11      p-2 p-10      net01 net1 net2      H1 h1 h2
 *
 * Equal but for case or leading zeros, names still get one order (a plain comparison breaks
 * the tie), so sorting is deterministic. No locale, no Intl: the same order in Node.js and
 * in any browser.
 */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    if (isDigit(ca) && isDigit(cb)) {
      // Two numbers: the one with more significant digits is bigger, else digit by digit.
      let si = i;
      let sj = j;
      while (si < a.length && a.charCodeAt(si) === 48) si++;
      while (sj < b.length && b.charCodeAt(sj) === 48) sj++;
      let ei = si;
      let ej = sj;
      while (ei < a.length && isDigit(a.charCodeAt(ei))) ei++;
      while (ej < b.length && isDigit(b.charCodeAt(ej))) ej++;
      if (ei - si !== ej - sj) return ei - si - (ej - sj);
      for (let k = 0; k < ei - si; k++) {
        const d = a.charCodeAt(si + k) - b.charCodeAt(sj + k);
        if (d !== 0) return d;
      }
      i = ei;
      j = ej;
      continue;
    }
    const la = lower(ca);
    const lb = lower(cb);
    if (la !== lb) return la - lb;
    i++;
    j++;
  }
  const rest = (a.length - i) - (b.length - j);
  if (rest !== 0) return rest;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A copy of `items` in natural order of `key` (their names by default). */
export function naturalSort<T>(items: readonly T[], key: (t: T) => string = (t) => (t as { name: string }).name): T[] {
  return [...items].sort((x, y) => naturalCompare(key(x), key(y)));
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const lower = (c: number) => (c >= 65 && c <= 90 ? c + 32 : c);
