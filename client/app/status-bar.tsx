import { useLiveQuery } from 'dexie-react-hooks';
import type { Session } from './session';
import { connectionLabel, describeMutation, formatCount, formatTime } from './format';
import { useSyncStatus } from './use-sync-status';
import type { StoreDb } from './use-tideline';

interface StatusBarProps {
  session: Session | null;
  db: StoreDb | null;
  onSignOut: () => void;
}

/** The top bar: always there, so the sync state is never out of sight. */
export function StatusBar({ session, db, onSignOut }: StatusBarProps) {
  if (session && db) return <LiveStatusBar session={session} db={db} onSignOut={onSignOut} />;
  return (
    <header className="topbar">
      <Brand />
      <section className="status" aria-label="Sync status">
        <output className="badge" data-state="stopped" aria-label="Connection">
          {session ? 'Opening…' : 'Signed out'}
        </output>
      </section>
      {session && <UserMenu session={session} onSignOut={onSignOut} />}
    </header>
  );
}

function Brand() {
  return (
    <div className="brand">
      <span className="brand-mark" aria-hidden="true">
        ≈
      </span>
      Tideline
    </div>
  );
}

function UserMenu({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  return (
    <div className="user">
      <span className="user-name">
        {session.userId}
        {session.roles.includes('staff') && <span className="tag">staff</span>}
      </span>
      <button type="button" className="quiet" onClick={onSignOut}>
        Sign out
      </button>
    </div>
  );
}

function LiveStatusBar({ session, db, onSignOut }: { session: Session; db: StoreDb; onSignOut: () => void }) {
  const { status, leader, latestRejection, dismissRejection } = useSyncStatus(db);
  const rejections = useLiveQuery(() => db.rejections(), [db], []);
  const waiting = !leader && status.state === 'stopped';
  const problem = status.state === 'backoff' || status.state === 'failed' ? status.lastError?.message : undefined;
  return (
    <header className="topbar">
      <Brand />
      <section className="status" aria-label="Sync status">
        <output className="badge" data-state={status.state} aria-label="Connection" title={problem}>
          {waiting ? 'Waiting' : connectionLabel(status)}
        </output>
        <span className="item">
          <span className="item-label">Pending</span>
          <output aria-label="Pending changes" aria-live="off">
            {formatCount(status.pending)}
          </output>
        </span>
        <span className="item">
          <span className="item-label">Synced</span>
          <output aria-label="Last synced" aria-live="off">
            {status.lastSyncedAt === null
              ? 'not yet'
              : `LSN ${formatCount(status.lastSyncedLsn)} at ${formatTime(status.lastSyncedAt)}`}
          </output>
        </span>
        <span className="item">
          <span className="item-label">Held by</span>
          <output aria-label="Connection holder" aria-live="off">
            {leader ? 'this tab' : 'another tab'}
          </output>
        </span>
        {rejections.length > 0 && (
          <details className="rejections">
            <summary>{formatCount(rejections.length)} rejected</summary>
            <ul aria-label="Rejected changes">
              {rejections
                .slice(-20)
                .reverse()
                .map((r) => (
                  <li key={r.seq}>
                    <strong>{describeMutation(r.name, r.args)}</strong>
                    <span>
                      {r.error.code}: {r.error.message}
                    </span>
                    <time dateTime={new Date(r.at).toISOString()}>{formatTime(r.at)}</time>
                  </li>
                ))}
            </ul>
          </details>
        )}
        {problem && status.state === 'failed' && <span className="problem">{problem}</span>}
      </section>
      <UserMenu session={session} onSignOut={onSignOut} />
      {latestRejection && (
        <div role="alert" className="banner">
          <span>
            Rejected {describeMutation(latestRejection.name, latestRejection.args)}: {latestRejection.error.message}
          </span>
          <button type="button" className="quiet" onClick={dismissRejection}>
            Dismiss
          </button>
        </div>
      )}
    </header>
  );
}
