import type { JsonValue } from 'tideline/schema';
import type { RejectionRecord, SyncStatus } from 'tideline/client';

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const price = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const count = new Intl.NumberFormat('en-US');

export const formatTime = (ms: number): string => time.format(ms);
export const formatDateTime = (ms: number): string => dateTime.format(ms);
export const formatPrice = (value: JsonValue | undefined): string =>
  typeof value === 'number' ? price.format(value) : '–';
export const formatCount = (n: number): string => count.format(n);

/** What the connection badge says, for each engine state. */
export function connectionLabel(status: SyncStatus): string {
  switch (status.state) {
    case 'live':
      return 'Online';
    case 'syncing':
      return 'Syncing';
    case 'connecting':
    case 'handshaking':
      return 'Connecting';
    case 'backoff':
    case 'stopped':
    case 'offline':
      return 'Offline';
    case 'failed':
      return 'Stopped';
  }
}

/** Random ids (UUIDs) are long; their first characters tell them apart. */
export const shortId = (id: string): string => (id.length > 12 ? `${id.slice(0, 8)}…` : id);

/** A short name for a mutation: `patch notes/abc`, `checkout`. */
export function describeMutation(name: string, args: JsonValue): string {
  if (typeof args === 'object' && args !== null && !Array.isArray(args)) {
    const collection = args['collection'];
    const doc = args['doc'];
    const id =
      typeof args['id'] === 'string'
        ? args['id']
        : typeof doc === 'object' && doc !== null && !Array.isArray(doc) && typeof doc['id'] === 'string'
          ? doc['id']
          : null;
    if (typeof collection === 'string')
      return id === null ? `${name} ${collection}` : `${name} ${collection}/${shortId(id)}`;
  }
  return name;
}

/** What the page says about a rejected mutation; a refused checkout says what it means for the shopper. */
export function describeRejection(r: Pick<RejectionRecord, 'name' | 'args' | 'error'>): string {
  if (r.name === 'checkout') {
    return `Your order could not be placed: ${r.error.message}. Your cart has been restored.`;
  }
  if (r.name === 'cartAdd' || r.name === 'cartSet') return `Your cart was not changed: ${r.error.message}.`;
  return `Rejected ${describeMutation(r.name, r.args)}: ${r.error.message}`;
}

/** A message for an error thrown by a local mutation (a TidelineError) or anything else. */
export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export const formatRating = (value: JsonValue | undefined): string =>
  typeof value === 'number' ? `${value.toFixed(1)} out of 5` : 'not rated';
