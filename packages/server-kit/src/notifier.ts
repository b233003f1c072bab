/**
 * Wake-ups between parts of a server (sync long-polls, the delivery queue, the mail outbox).
 * In-process today; a PostgreSQL LISTEN/NOTIFY implementation can replace it when
 * several processes share a database (DESIGN.md, storage rule). Never carries correctness:
 * listeners re-read the database when woken.
 */
import { EventEmitter } from "node:events";

export interface Notifier {
  notify(channel: string, payload?: string): void;
  /** Returns an unsubscribe function. */
  subscribe(channel: string, listener: (payload: string | undefined) => void): () => void;
}

export class InProcessNotifier implements Notifier {
  readonly #emitter = new EventEmitter();
  constructor() {
    this.#emitter.setMaxListeners(0);
  }
  notify(channel: string, payload?: string): void {
    this.#emitter.emit(channel, payload);
  }
  subscribe(channel: string, listener: (payload: string | undefined) => void): () => void {
    this.#emitter.on(channel, listener);
    return () => this.#emitter.off(channel, listener);
  }
}
