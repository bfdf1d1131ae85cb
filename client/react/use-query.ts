import { useEffect, useState } from 'react';
import type { DependencyList } from 'react';
import type { TidelineSource } from './source';

/**
 * A live query of the local replica: runs `query` (Dexie reads, such as
 * `db.collection('todos').table.where('done').equals(0).toArray()`), and again
 * whenever a table it read changes, in this tab or another. Returns
 * `initial` until the first result; re-subscribes when `deps` change. A query
 * that fails throws its error from the component, for an error boundary.
 */
export function useQuery<T>(db: TidelineSource, query: () => Promise<T>, deps: DependencyList): T | undefined;
export function useQuery<T, I>(db: TidelineSource, query: () => Promise<T>, deps: DependencyList, initial: I): T | I;
export function useQuery<T, I>(
  db: TidelineSource,
  query: () => Promise<T>,
  deps: DependencyList,
  initial?: I,
): T | I | undefined {
  const [state, setState] = useState<{ value: T | I | undefined; error: Error | null }>({
    value: initial,
    error: null,
  });
  useEffect(() => {
    const subscription = db.liveQuery(query).subscribe({
      next: (value) => setState({ value, error: null }),
      error: (error: unknown) =>
        setState((s) => ({ value: s.value, error: error instanceof Error ? error : new Error(String(error)) })),
    });
    return () => subscription.unsubscribe();
    // `query` is new on every render: `deps` say when it means something else, as with useEffect.
  }, [db, ...deps]);
  if (state.error !== null) throw state.error;
  return state.value;
}
