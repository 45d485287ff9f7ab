export type Listener<T> = (payload: T) => void;

/**
 * A minimal typed event emitter that runs unchanged in browsers and Node. A listener that
 * throws does not stop the others or the stream that emitted; its error is rethrown on a
 * microtask so it still surfaces (an uncaught error), exactly once.
 */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(fn as Listener<never>);
    return () => this.off(type, fn);
  }

  off<K extends keyof Events>(type: K, fn: Listener<Events[K]>): void {
    this.#listeners.get(type)?.delete(fn as Listener<never>);
  }

  /** Like `on`, but the listener runs at most once. */
  once<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    const off = this.on(type, (payload) => {
      off();
      fn(payload);
    });
    return off;
  }

  protected emit<K extends keyof Events>(type: K, payload: Events[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    // A copy, so listeners that unsubscribe (once) or subscribe while we loop are safe.
    for (const fn of [...set] as Listener<Events[K]>[]) {
      try {
        fn(payload);
      } catch (err) {
        rethrowLater(err);
      }
    }
  }
}

/** Surfaces an app callback's error as an uncaught error without unwinding our own state. */
export function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}
