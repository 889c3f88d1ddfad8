/**
 * Drivers keep a lock's file or handle open between acquisitions: opening,
 * creating and unlinking cost 10-100x a lock operation. This bounds how many
 * idle ones a process (thread) keeps.
 */
export const MAX_IDLE = 32;

/**
 * Lets go of the least recently used idle entries (a Map's insertion order:
 * re-insert an entry on use) until at most MAX_IDLE are idle. `evict` must
 * delete the entry from the map.
 */
export function evictIdle<K, V extends { held: boolean }>(entries: Map<K, V>, evict: (key: K, value: V) => void): void {
  let idle = 0;
  for (const value of entries.values()) if (!value.held) idle++;
  for (const [key, value] of entries) {
    if (idle <= MAX_IDLE) break;
    if (value.held) continue;
    evict(key, value);
    idle--;
  }
}
