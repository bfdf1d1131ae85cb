import { describe, expect, it } from 'vitest';
import { parseName, parsePrice, parsePriceBound, parseQuantity, parseRestock, parseStock } from './input';

describe('parseQuantity', () => {
  it.each([
    ['1', 1],
    [' 42 ', 42],
    ['99', 99],
  ])('accepts %j', (raw, value) => expect(parseQuantity(raw)).toEqual({ ok: true, value }));

  it.each([
    ['', 'Enter a quantity: a whole number from 1 to 99.'],
    ['   ', 'Enter a quantity: a whole number from 1 to 99.'],
    ['0', 'A quantity is at least 1.'],
    ['-3', 'A quantity is at least 1.'],
    ['100', 'At most 99 of one product fit in a cart.'],
    ['2.5', 'A quantity is a whole number from 1 to 99, not 2.5.'],
    ['abc', 'A quantity is a whole number from 1 to 99; “abc” is not a number.'],
    ['1e3', 'A quantity is a whole number from 1 to 99; “1e3” is not a number.'],
    ['Infinity', 'A quantity is a whole number from 1 to 99; “Infinity” is not a number.'],
  ])('refuses %j', (raw, message) => expect(parseQuantity(raw)).toEqual({ ok: false, message }));
});

describe('parsePrice', () => {
  it.each([
    ['12.5', 12.5],
    ['$1,299.99', 1299.99],
    ['0', 0],
    ['.5', 0.5],
  ])('accepts %j', (raw, value) => expect(parsePrice(raw)).toEqual({ ok: true, value }));

  it.each([
    ['-1', 'A price cannot be negative.'],
    ['', 'Enter a price, like 12.50.'],
    ['free', 'A price is a number, like 12.50; “free” is not.'],
    ['1.999', 'A price has at most two decimals (cents).'],
    ['2000000', 'A price is at most $1,000,000.'],
  ])('refuses %j', (raw, message) => expect(parsePrice(raw)).toEqual({ ok: false, message }));
});

describe('stock, restock, names and price bounds', () => {
  it('stock is a whole number from 0', () => {
    expect(parseStock('0')).toEqual({ ok: true, value: 0 });
    expect(parseStock('-1')).toEqual({ ok: false, message: 'Stock cannot be negative.' });
    expect(parseStock('1.5')).toEqual({ ok: false, message: 'Stock is a whole number from 0 to 1,000,000, not 1.5.' });
  });

  it('a restock adds 1 to 10,000 units', () => {
    expect(parseRestock('25')).toEqual({ ok: true, value: 25 });
    expect(parseRestock('0')).toEqual({ ok: false, message: 'A restock amount is at least 1.' });
    expect(parseRestock('10001')).toEqual({
      ok: false,
      message: 'A restock adds at most 10,000 units at a time.',
    });
  });

  it('a name is trimmed and not empty', () => {
    expect(parseName('  Smart   Lamp ')).toEqual({ ok: true, value: 'Smart Lamp' });
    expect(parseName('  ')).toEqual({ ok: false, message: 'A product needs a name.' });
    expect(parseName('x'.repeat(200))).toEqual({ ok: true, value: 'x'.repeat(200) });
    expect(parseName('x'.repeat(201))).toEqual({ ok: false, message: 'A product name is at most 200 characters.' });
  });

  it('an empty price bound means none', () => {
    expect(parsePriceBound('')).toEqual({ ok: true, value: null });
    expect(parsePriceBound('20')).toEqual({ ok: true, value: 20 });
    expect(parsePriceBound('-2')).toEqual({ ok: false, message: 'A price cannot be negative.' });
  });
});
