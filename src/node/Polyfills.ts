/**
 * What this runtime lacks and a dependency expects. js-libp2p calls `Promise.withResolvers`, which
 * Node 22 has and Node 20 (our floor) does not; importing this module installs it once, and only
 * where it is missing.
 */
interface Resolvers<T> {
  readonly promise: Promise<T>
  readonly resolve: (value: T | PromiseLike<T>) => void
  readonly reject: (reason?: unknown) => void
}

const promiseWithResolvers = <T>(): Resolvers<T> => {
  let resolve: Resolvers<T>["resolve"] = () => undefined
  let reject: Resolvers<T>["reject"] = () => undefined
  const promise = new Promise<T>((onResolve, onReject) => {
    resolve = onResolve
    reject = onReject
  })
  return { promise, resolve, reject }
}

const PromiseConstructor = Promise as PromiseConstructor & { withResolvers?: <T>() => Resolvers<T> }
if (typeof PromiseConstructor.withResolvers !== "function") {
  Object.defineProperty(PromiseConstructor, "withResolvers", {
    value: promiseWithResolvers,
    writable: true,
    configurable: true
  })
}

export {}
