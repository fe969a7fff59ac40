/**
 * IndexedDB's callbacks as promises, for the page's stores (BlobCache, AdapterStore): each failure
 * becomes the store's own one-line error.
 */

/** The request's result, or `fail` with IndexedDB's reason. */
export const requestDone = <T>(request: IDBRequest<T>, fail: (reason: string) => Error): Promise<T> =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(fail(`IndexedDB: ${request.error?.message ?? "request failed"}`))
  })

/** Resolves when the transaction commits, or fails with IndexedDB's reason when it errs or aborts. */
export const transactionDone = (transaction: IDBTransaction, fail: (reason: string) => Error): Promise<void> =>
  new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve()
    transaction.onerror = () => reject(fail(`IndexedDB: ${transaction.error?.message ?? "transaction failed"}`))
    transaction.onabort = () => reject(fail(`IndexedDB: ${transaction.error?.message ?? "transaction aborted"}`))
  })
