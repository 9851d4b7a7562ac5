// Node 20 lacks Promise.withResolvers, which libp2p 3.x (yamux, it-queue, @libp2p/utils, ping)
// calls on the first Noise/yamux connection: without it that connection crashes the process.
// Import this module before anything that loads libp2p; ESM evaluates imports in order, so a
// side-effect import placed first runs before libp2p's modules are evaluated.

interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };

if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    // Not enumerable, like the native one, so it never shows up in for-in over Promise.
    enumerable: false,
    value: function withResolvers<T>(this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve'];
      let reject!: Resolvers<T>['reject'];
      // `this` keeps subclass semantics (SubPromise.withResolvers()) as the spec does.
      const promise = new this<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

export {};
