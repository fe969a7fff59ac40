/**
 * A least-recently-used cache of bounded size, for anything keyed that a caller can make grow (parsed
 * keys, tokenized words): a Map keeps insertion order, so the oldest entry is first.
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, V>()
  constructor(readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.entries.get(key)
    if (value !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, value)
    }
    return value
  }
  set(key: K, value: V) {
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }
  get size() {
    return this.entries.size
  }
}
