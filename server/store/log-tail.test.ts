import { describe, expect, it } from 'vitest';
import type { Change } from '../../shared/protocol/change';
import { LogTail } from './log-tail';
import type { LogSource } from './log-tail';
import type { LogPage } from './store';

const change = (lsn: number): Change => ({
  lsn,
  term: 1,
  collection: 'notes',
  id: `n${lsn}`,
  doc: { id: `n${lsn}` },
  owner: null,
  clientId: null,
  seq: null,
  ts: 0,
});

/** A log in memory; `onRead` runs after each read, before its page is returned. */
function memoryLog(onRead: (page: LogPage) => void = () => undefined) {
  const entries: Change[] = [];
  const source: LogSource = {
    readLog: (after, limit) => {
      const changes = entries.filter((c) => c.lsn > after).slice(0, limit);
      const page = { changes, outcomes: [], to: changes[changes.length - 1]?.lsn ?? after };
      onRead(page);
      return Promise.resolve(page);
    },
  };
  return { entries, source, commit: () => entries.push(change(entries.length + 1)) };
}

describe('LogTail', () => {
  it('delivers every entry once, in LSN order, page by page from its checkpoint', async () => {
    const log = memoryLog();
    for (let i = 0; i < 25; i++) log.commit();
    const seen: number[] = [];
    const tail = new LogTail({
      source: log.source,
      from: 3,
      pageSize: 4,
      onPage: (page) => void seen.push(...page.changes.map((c) => c.lsn)),
      onError: (err) => {
        throw err;
      },
    });
    await tail.reached(25);
    tail.wake();
    tail.wake();
    for (let i = 0; i < 5; i++) log.commit();
    await tail.reached(30);
    expect(seen).toEqual(Array.from({ length: 27 }, (_, i) => i + 4));
  });

  it('reads again when woken after its last read came back empty but before its pass ended', async () => {
    const ref: { tail?: LogTail } = {};
    let raced = false;
    const log = memoryLog((page) => {
      // The commit lands, and its wake-up arrives, just after the read that found nothing new.
      if (page.changes.length === 0 && !raced && ref.tail?.checkpoint === 1) {
        raced = true;
        log.commit();
        ref.tail.wake();
      }
    });
    log.commit();
    const seen: number[] = [];
    const tail = new LogTail({
      source: log.source,
      from: 0,
      pageSize: 10,
      onPage: (page) => void seen.push(...page.changes.map((c) => c.lsn)),
      onError: (err) => {
        throw err;
      },
    });
    ref.tail = tail;
    await tail.reached(1);
    // The pass that delivered LSN 1 goes on to an empty read, during which LSN 2 commits.
    await tail.reached(2);
    expect(raced).toBe(true);
    expect(seen).toEqual([1, 2]);
  });

  it('reports a failed read and retries from its checkpoint at the next wake-up, delivering nothing twice', async () => {
    const log = memoryLog();
    let fail = true;
    const source: LogSource = {
      readLog: (after, limit) => {
        if (after === 2 && fail) {
          fail = false;
          return Promise.reject(new Error('connection lost'));
        }
        return log.source.readLog(after, limit);
      },
    };
    for (let i = 0; i < 5; i++) log.commit();
    const seen: number[] = [];
    const errors: unknown[] = [];
    const tail = new LogTail({
      source,
      from: 0,
      pageSize: 2,
      onPage: (page) => void seen.push(...page.changes.map((c) => c.lsn)),
      onError: (err) => void errors.push(err),
    });
    await tail.reached(2);
    await tail.reached(5);
    expect(errors).toHaveLength(1);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });
});
