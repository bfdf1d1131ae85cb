/** A message after an action: what happened, or, as an alert, why nothing did. */
export interface NoticeState {
  kind: 'ok' | 'error';
  text: string;
}

export function Notice({ notice, onDismiss }: { notice: NoticeState | null; onDismiss?: () => void }) {
  if (!notice) return null;
  return (
    <div className="notice" data-kind={notice.kind}>
      <p role={notice.kind === 'error' ? 'alert' : 'status'}>{notice.text}</p>
      {onDismiss && (
        <button type="button" className="quiet" onClick={onDismiss} aria-label="Dismiss message">
          ×
        </button>
      )}
    </div>
  );
}
