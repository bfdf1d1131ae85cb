import { useEffect, useState } from 'react';
import type { RejectionRecord } from '../sync/local-store';
import type { TidelineSource } from './source';
import { useQuery } from './use-query';

export interface Rejections {
  /** Every rejection the replica has recorded, oldest first, kept live ([] while loading). */
  all: RejectionRecord[];
  /** The last rejection reported while the component was mounted, until dismissed: for a notice. */
  latest: RejectionRecord | null;
  dismiss: () => void;
}

/** The server's rejections of this replica's mutations (another tab's too, when it holds the connection). */
export function useRejections(db: TidelineSource): Rejections {
  const all = useQuery(db, () => db.rejections(), [], [] as RejectionRecord[]);
  const [latest, setLatest] = useState<RejectionRecord | null>(null);
  useEffect(
    () =>
      db.on((e) => {
        if (e.type === 'rejected') setLatest(e.rejection);
      }),
    [db],
  );
  return { all, latest, dismiss: () => setLatest(null) };
}
