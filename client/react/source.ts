import type { AppSchema } from '../../shared/schema/define-schema';
import type { Tideline } from '../lib/api';

/** What the hooks use of an open database; any `Tideline<S>` is one. */
export type TidelineSource = Pick<
  Tideline<AppSchema>,
  'status' | 'isLeader' | 'on' | 'liveQuery' | 'rejections' | 'mutationState' | 'reconnectNow'
>;
