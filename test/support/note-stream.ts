import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import type { PushAck } from '../../shared/protocol/push';
import { storeSchema } from '../../shared/apps/store';
import { tokenFor } from './node-client';
import { rawClient } from './raw-client';
import type { RawClient } from './raw-client';

/** What one writer may hold: the demo schema's per-user notes quota, with room for JSON overhead. */
const NOTES_QUOTA_BYTES = storeSchema.collections.notes.quota.bytes;

/**
 * Pushes large public notes as a series of users, each kept under the demo
 * schema's per-user notes quota (so a test can fill a store with tens of MB
 * without being refused QUOTA_EXCEEDED). Each writer ignores what it is sent.
 */
export class NoteStream {
  private writer: RawClient | null = null;
  private writers = 0;
  private seq = 0;
  private held = 0;
  private readonly all: RawClient[] = [];

  constructor(
    private readonly url: string,
    private readonly prefix: string,
  ) {}

  /** Pushes `count` notes of `noteBytes` characters each as one push; ids are `<prefix>-<n>`, n counting from 1. */
  async push(count: number, noteBytes: number, timeoutMs = 20_000): Promise<PushAck> {
    const bytes = count * (noteBytes + 100);
    if (this.writer === null || this.held + bytes > NOTES_QUOTA_BYTES * 0.95) await this.nextWriter();
    const mutations = Array.from({ length: count }, () => {
      this.seq++;
      const n = ++this.written;
      const doc = { id: `${this.prefix}-${n}`, text: String(n % 10).repeat(noteBytes), createdAt: n };
      return { seq: this.seq, name: 'put', args: { collection: 'notes', doc } };
    });
    this.held += bytes;
    return pushAckSchema.parse(await this.writer!.request('push', { mutations }, timeoutMs));
  }

  /** Notes pushed so far (the highest id number). */
  written = 0;

  /** Opens the first writer now (by default it opens with the first push). */
  async ready(): Promise<void> {
    if (this.writer === null) await this.nextWriter();
  }

  close(): void {
    for (const w of this.all) w.close();
  }

  private async nextWriter(): Promise<void> {
    this.writer?.close();
    const name = `${this.prefix}-writer-${++this.writers}`;
    const writer = await rawClient(this.url);
    this.all.push(writer);
    const ack = helloAckSchema.parse(await writer.hello(tokenFor(name), name));
    if (!ack.ok) throw new Error(`hello of ${name} refused: ${ack.error.code} ${ack.error.message}`);
    writer.socket.offAny();
    writer.received.length = 0;
    this.writer = writer;
    this.seq = 0;
    this.held = 0;
  }
}
