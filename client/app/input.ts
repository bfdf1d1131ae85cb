/**
 * Parsing what people type. Every field of the storefront is a text field
 * parsed here, so anything typed (nothing, letters, -3, 2.5, 1e9) gets a
 * message that says what is wanted, and nothing reaches the replica. The
 * schema's own checks (shared/apps/store.ts) still run on every mutation.
 */

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (message: string): Parsed<never> => ({ ok: false, message });

/** A decimal number as people write it: digits, one optional point, an optional leading minus. */
const NUMBER = /^-?(\d+\.?\d*|\.\d+)$/;

const clean = (raw: string): string => raw.trim().replace(/^\$/, '').replace(/,/g, '');

function readNumber(raw: string): number | null {
  const text = clean(raw);
  return NUMBER.test(text) ? Number(text) : null;
}

/** A whole number in [min, max]; `what` names it in messages ("A quantity"). */
function wholeNumber(raw: string, what: string, min: number, max: number, tooMany: string): Parsed<number> {
  const range = `a whole number from ${min} to ${max.toLocaleString('en-US')}`;
  if (!raw.trim()) return bad(`Enter ${what.toLowerCase()}: ${range}.`);
  const n = readNumber(raw);
  if (n === null) return bad(`${what} is ${range}; “${raw.trim()}” is not a number.`);
  if (!Number.isInteger(n)) return bad(`${what} is ${range}, not ${n}.`);
  if (n < min) return bad(min === 0 ? `${what} cannot be negative.` : `${what} is at least ${min}.`);
  if (n > max) return bad(tooMany);
  return ok(n);
}

export const MAX_QTY = 99;

/** How many of one product go in the cart: 1 to 99, as the cart mutators allow. */
export const parseQuantity = (raw: string): Parsed<number> =>
  wholeNumber(raw, 'A quantity', 1, MAX_QTY, `At most ${MAX_QTY} of one product fit in a cart.`);

export const MAX_STOCK = 1_000_000;

/** A stock level set by staff. */
export const parseStock = (raw: string): Parsed<number> =>
  wholeNumber(raw, 'Stock', 0, MAX_STOCK, `Stock is at most ${MAX_STOCK.toLocaleString('en-US')}.`);

export const MAX_RESTOCK = 10_000;

/** Units added by a restock. */
export const parseRestock = (raw: string): Parsed<number> =>
  wholeNumber(
    raw,
    'A restock amount',
    1,
    MAX_RESTOCK,
    `A restock adds at most ${MAX_RESTOCK.toLocaleString('en-US')} units at a time.`,
  );

export const MAX_PRICE = 1_000_000;

/** A price in dollars and cents: 0 to 1,000,000 with at most two decimals. */
export function parsePrice(raw: string): Parsed<number> {
  if (!raw.trim()) return bad('Enter a price, like 12.50.');
  const n = readNumber(raw);
  if (n === null) return bad(`A price is a number, like 12.50; “${raw.trim()}” is not.`);
  if (n < 0) return bad('A price cannot be negative.');
  if (n > MAX_PRICE) return bad(`A price is at most $${MAX_PRICE.toLocaleString('en-US')}.`);
  if (/\.\d{3,}$/.test(clean(raw))) return bad('A price has at most two decimals (cents).');
  return ok(n);
}

/** An optional price bound of a filter: empty means none. */
export function parsePriceBound(raw: string): Parsed<number | null> {
  if (!raw.trim()) return ok(null);
  const n = readNumber(raw);
  if (n === null) return bad(`A price is a number, like 25; “${raw.trim()}” is not.`);
  if (n < 0) return bad('A price cannot be negative.');
  return ok(n);
}

export const MAX_NAME = 200;

/** A product name: what the product schema allows, trimmed. */
export function parseName(raw: string): Parsed<string> {
  const name = raw.trim().replace(/\s+/g, ' ');
  if (!name) return bad('A product needs a name.');
  if (name.length > MAX_NAME) return bad(`A product name is at most ${MAX_NAME} characters.`);
  return ok(name);
}
