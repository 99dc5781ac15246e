// A read-only object view over a store's records: `view(id => ...)[id]` reads one field of one
// record, so components written against maps keyed by conversation id keep working.

export function view<T>(read: (id: string) => T | undefined, ids: () => string[]): Readonly<Record<string, T>> {
  const value = (p: string | symbol) => (typeof p === 'string' ? read(p) : undefined);
  return new Proxy({} as Record<string, T>, {
    get: (_t, p) => value(p),
    has: (_t, p) => value(p) !== undefined,
    ownKeys: () => ids().filter((id) => read(id) !== undefined),
    getOwnPropertyDescriptor: (_t, p) => {
      const v = value(p);
      return v === undefined ? undefined : { value: v, enumerable: true, configurable: true, writable: false };
    },
    set: () => false,
    deleteProperty: () => false,
  });
}
