import { useEffect, useState } from 'react';
import type { MutationState } from '../sync/engine';
import type { TidelineSource } from './source';

/**
 * Where mutation `seq` stands (pending, confirmed, rejected with code and
 * message), re-read after every sync event until it settles; undefined while
 * loading or when `seq` is null or undefined (nothing submitted yet).
 */
export function useMutationState(db: TidelineSource, seq: number | null | undefined): MutationState | undefined {
  const [state, setState] = useState<{ seq: number; state: MutationState } | null>(null);
  useEffect(() => {
    if (seq === null || seq === undefined) return undefined;
    let active = true;
    /** Reads are numbered so a slow older read never overwrites a newer one. */
    let issued = 0;
    let settled = false;
    const read = (): void => {
      if (settled) return;
      const n = ++issued;
      db.mutationState(seq).then(
        (s) => {
          if (!active || n !== issued) return;
          settled = s.status !== 'pending';
          setState({ seq, state: s });
        },
        // The replica could not be read (it is closing): keep the last state.
        () => undefined,
      );
    };
    // A mutation settles only when the server's answer is applied (every tab hears of it).
    const stop = db.on((e) => {
      if (e.type === 'applied') read();
    });
    read();
    return () => {
      active = false;
      stop();
    };
  }, [db, seq]);
  return state !== null && state.seq === seq ? state.state : undefined;
}
