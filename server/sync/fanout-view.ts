import type { Change } from '../../shared/protocol/change';

/**
 * One commit's changes as the sessions see them, computed once per commit
 * instead of once per session. A session's visible changes depend only on
 * its user and the collections its roles read in full (`inScope`); the
 * changes it is sent lose their origin unless it made them (`ownOrigin`).
 * So every session whose user owns none of the commit's changes, with the
 * same roles, sees the very same list: `visibleTo` returns one shared array
 * (and one key) for all of them, which lets the fan-out build, and the
 * socket layer encode, one message for the whole group.
 */
export class FanoutView {
  /** The changes with their origin stripped, as every session but the origin's gets them. */
  private readonly stripped: readonly Change[];
  private readonly owners = new Set<string>();
  private readonly origins = new Set<string>();
  private readonly cache = new Map<string, VisibleList>();
  /** One entry per distinct list (by its LSNs), so two scopes that see the same changes share it. */
  private readonly bySignature = new Map<string, VisibleList>();
  /** What a user who owns none of the changes and reads no collection in full sees (the common case). */
  private publicList: VisibleList | null = null;

  constructor(private readonly changes: readonly Change[]) {
    this.stripped = changes.map((c) => (c.clientId === null ? c : { ...c, clientId: null, seq: null }));
    for (const c of changes) {
      if (c.owner !== null) this.owners.add(c.owner);
      if (c.clientId !== null) this.origins.add(c.clientId);
    }
  }

  /** Whether `clientId` made one of the changes (it must get them with their origin: an individual message). */
  madeAny(clientId: string): boolean {
    return this.origins.has(clientId);
  }

  /**
   * The changes `userId` may see, origins stripped, and a key that is equal
   * for two users exactly when their lists are (then the same object is
   * returned).
   */
  visibleTo(userId: string, allOf: readonly string[]): VisibleList {
    // A user named in no change's owner sees what any user with the same full-read collections sees.
    const ownsSome = this.owners.has(userId);
    if (!ownsSome && allOf.length === 0 && this.publicList !== null) return this.publicList;
    const scopeKey = `${ownsSome ? `u:${userId}` : ''}\u0000${allOf.join('\u0000')}`;
    let hit = this.cache.get(scopeKey);
    if (hit === undefined) {
      const changes = this.stripped.filter((c) => inScope(c, userId, allOf));
      // Scopes that differ but see the same changes here (a staff role and no order in this commit) share one.
      const signature = changes.map((c) => c.lsn).join(',');
      hit = this.bySignature.get(signature);
      if (hit === undefined) {
        hit = { key: signature, changes };
        this.bySignature.set(signature, hit);
      }
      this.cache.set(scopeKey, hit);
    }
    if (!ownsSome && allOf.length === 0) this.publicList = hit;
    return hit;
  }

  /** The changes `userId` may see, with the origin kept on those `clientId` made. */
  visibleWithOrigin(userId: string, clientId: string, allOf: readonly string[]): Change[] {
    const out: Change[] = [];
    this.changes.forEach((c, i) => {
      if (inScope(c, userId, allOf)) out.push(c.clientId === clientId ? c : this.stripped[i]!);
    });
    return out;
  }
}

/** The changes some scopes see, and a key equal for two lists exactly when they hold the same changes. */
export interface VisibleList {
  key: string;
  changes: readonly Change[];
}

/** A user sees public documents, their own, and every document of the collections their roles read in full. */
export const inScope = (
  change: { owner: string | null; collection: string },
  userId: string,
  allOf: readonly string[],
): boolean => change.owner === null || change.owner === userId || allOf.includes(change.collection);
