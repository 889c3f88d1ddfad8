/**
 * Drivers keep a lock's file or handle open between acquisitions: opening,
 * creating and unlinking cost 10-100x a lock operation. This bounds how many
 * idle ones a process (thread) keeps.
 */
export const MAX_IDLE = 32;

/**
 * Lets go of the least recently used idle entries (a Map's insertion order:
 * re-insert an entry on use) until at most MAX_IDLE are idle. `evict` must
 * delete the entry from the map. `inUse` tells the entries that are not
 * idle (default: held ones).
 */
export function evictIdle<K, V extends { held: boolean }>(
  entries: Map<K, V>,
  evict: (key: K, value: V) => void,
  inUse: (key: K, value: V) => boolean = (_key, value) => value.held
): void {
  if (entries.size <= MAX_IDLE) return;
  let idle = 0;
  for (const [key, value] of entries) if (!inUse(key, value)) idle++;
  for (const [key, value] of entries) {
    if (idle <= MAX_IDLE) break;
    if (inUse(key, value)) continue;
    evict(key, value);
    idle--;
  }
}
