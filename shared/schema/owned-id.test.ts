import { describe, expect, it } from 'vitest';
import { isOwnedBy, ownedId, ownerOfId, ownerPrefix } from './owned-id';

describe('owner-namespaced ids', () => {
  it('puts the percent-encoded user id and a slash before the rest', () => {
    expect(ownedId('alice', 'cart')).toBe('alice/cart');
    expect(ownedId('a/b', 'x/y')).toBe('a%2Fb/x/y');
    expect(ownerPrefix('bob@example.com')).toBe('bob%40example.com/');
    expect(() => ownedId('alice', '')).toThrow(/non-empty/);
    expect(() => ownedId('', 'x')).toThrow(/user id/);
  });

  it('reads the owner back, only from a canonical prefix with a rest', () => {
    for (const user of ['alice', 'a/b', 'ü ñ', '%41', '~x']) expect(ownerOfId(ownedId(user, 'r/s'))).toBe(user);
    for (const id of ['cart:alice', 'alice/', '/x', '%41/x', '%E0%A4%A/x']) expect(ownerOfId(id)).toBeUndefined();
  });

  it('tells whether an id is in a user namespace', () => {
    expect(isOwnedBy('alice/cart', 'alice')).toBe(true);
    expect(isOwnedBy('alice/', 'alice')).toBe(false);
    expect(isOwnedBy('alice/cart', 'al')).toBe(false);
    expect(isOwnedBy('a/b/x', 'a/b')).toBe(false);
    expect(isOwnedBy('a%2Fb/x', 'a')).toBe(false);
  });
});
