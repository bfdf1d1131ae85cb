import { useId, useState } from 'react';
import type { FormEvent } from 'react';
import type { Doc } from 'tideline/schema';
import { formatDateTime } from './format';
import type { StoreDb } from './use-tideline';
import { useQuery } from 'tideline/react';

const MAX_NOTE = 1000;

const text = (doc: Doc): string => (typeof doc['text'] === 'string' ? doc['text'] : '');
const createdAt = (doc: Doc): number => (typeof doc['createdAt'] === 'number' ? doc['createdAt'] : 0);

/**
 * The shared notes board: every signed-in user reads and writes it. Writes go
 * to the local replica at once and sync in the background; the list is a
 * live query, so it follows changes from this tab, other tabs and the server.
 */
export function NotesBoard({ db }: { db: StoreDb }) {
  // Sorted here rather than through the createdAt index, which would skip notes without one.
  const notes = useQuery(
    db,
    async () => (await db.collection('notes').table.toArray()).sort((a, b) => createdAt(b) - createdAt(a)),
    [db],
  );
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);

  /** Runs a local mutation; one that is invalid whatever the data throws at once and stores nothing. */
  const run = (mutation: Promise<unknown>): void => {
    setError(null);
    mutation.catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)));
  };

  const add = (e: FormEvent): void => {
    e.preventDefault();
    const value = draft.trim();
    if (!value) return;
    const doc: Doc = { id: crypto.randomUUID(), text: value, author: db.userId, createdAt: Date.now() };
    run(db.mutate.put({ collection: 'notes', doc }));
    setDraft('');
  };

  return (
    <section className="card notes" aria-labelledby="notes-title">
      <div className="card-head">
        <h2 id="notes-title">Shared notes</h2>
        <p className="hint">Open this page in a second tab or browser: changes appear everywhere at once.</p>
      </div>
      <form className="note-form" onSubmit={add}>
        <input
          type="text"
          aria-label="New note"
          placeholder="Write a note…"
          maxLength={MAX_NOTE}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
        <button type="submit" disabled={!draft.trim()}>
          Add note
        </button>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {notes === undefined ? (
        <p className="empty">Loading notes…</p>
      ) : notes.length === 0 ? (
        <p className="empty">No notes yet: add the first one.</p>
      ) : (
        <ul className="note-list" aria-label="Notes">
          {notes.map((note) => (
            <NoteItem
              key={note.id}
              note={note}
              onSave={(value) => run(db.mutate.patch({ collection: 'notes', id: note.id, set: { text: value } }))}
              onDelete={() => run(db.mutate.delete({ collection: 'notes', id: note.id }))}
            />
          ))}
        </ul>
      )}
    </section>
  );
}

interface NoteItemProps {
  note: Doc;
  onSave: (text: string) => void;
  onDelete: () => void;
}

function NoteItem({ note, onSave, onDelete }: NoteItemProps) {
  const [editing, setEditing] = useState<string | null>(null);
  const textId = useId();
  const author = typeof note['author'] === 'string' ? note['author'] : null;
  const at = createdAt(note);

  const save = (e: FormEvent): void => {
    e.preventDefault();
    const value = editing?.trim();
    if (value && value !== text(note)) onSave(value);
    setEditing(null);
  };

  return (
    <li className="note">
      {editing === null ? (
        <>
          <p className="note-text" id={textId}>
            {text(note)}
          </p>
          <div className="note-foot">
            <span className="note-meta">
              {author ?? 'Tideline'}
              {at > 0 && <> · {formatDateTime(at)}</>}
            </span>
            <span className="note-actions">
              <button type="button" className="quiet" aria-describedby={textId} onClick={() => setEditing(text(note))}>
                Edit
              </button>
              <button type="button" className="quiet danger" aria-describedby={textId} onClick={onDelete}>
                Delete
              </button>
            </span>
          </div>
        </>
      ) : (
        <form className="note-edit" onSubmit={save}>
          <textarea
            aria-label="Note text"
            maxLength={MAX_NOTE}
            rows={3}
            value={editing}
            onChange={(e) => setEditing(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') setEditing(null);
            }}
            autoFocus
          />
          <span className="note-actions">
            <button type="submit" disabled={!editing.trim()}>
              Save
            </button>
            <button type="button" className="quiet" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </span>
        </form>
      )}
    </li>
  );
}
