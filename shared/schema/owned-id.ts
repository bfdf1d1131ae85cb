/**
 * Owner-namespaced document ids. Ids are unique per collection, so in an
 * owner-only collection a user who could pick any id could take the one
 * another user's app will need (`carts/cart:bob`) and block them for good.
 * Instead each user writes only under their own prefix, as Firestore's
 * `users/{uid}/…` paths do: `ownedId('bob', 'cart')` is `bob/cart`.
 *
 * The user id is percent-encoded, so the prefix ends at the first `/` and
 * no user id (not even one with a `/` in it) yields another user's prefix.
 */

/** The prefix every id of `userId`'s documents in an owner-only collection starts with. */
export function ownerPrefix(userId: string): string {
  return `${encodeURIComponent(userId)}/`;
}

/**
 * The id of `userId`'s document `rest` in an owner-only collection: for
 * example `ownedId(ctx.userId, 'cart')`. `rest` is any non-empty string (it
 * may hold `/`).
 */
export function ownedId(userId: string, rest: string): string {
  if (userId.length === 0) throw new Error('ownedId needs a user id');
  if (rest.length === 0) throw new Error('ownedId needs a non-empty rest after the owner prefix');
  return ownerPrefix(userId) + rest;
}

/** The owner an owner-namespaced id names, or undefined when `id` is not one (no prefix, bad encoding, empty rest). */
export function ownerOfId(id: string): string | undefined {
  const slash = id.indexOf('/');
  if (slash <= 0 || slash === id.length - 1) return undefined;
  try {
    const owner = decodeURIComponent(id.slice(0, slash));
    // Only the canonical encoding counts, so one user has exactly one prefix.
    return ownerPrefix(owner) === id.slice(0, slash + 1) ? owner : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `id` lies in `userId`'s namespace, with something after the prefix. */
export function isOwnedBy(id: string, userId: string): boolean {
  const prefix = ownerPrefix(userId);
  return id.length > prefix.length && id.startsWith(prefix);
}
