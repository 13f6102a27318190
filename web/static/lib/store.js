// The device record, kept in IndexedDB: {issuer, deviceId, sub, name, privateKey, publicJWK,
// enrolledAt}. privateKey is a non-extractable CryptoKey: IndexedDB stores it by structured clone,
// so JavaScript (ours or anyone's) can use it to sign but can never read its bytes. Records are
// keyed by issuer, so one origin can serve several issuers (https://example.com/a/ and /b/).

const DB_NAME = 'countersign';
const DB_VERSION = 1;
const STORE = 'devices';

function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'issuer' });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the key store is busy in another tab; close it and retry'));
  });
}

async function run(mode, fn) {
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('key store transaction aborted'));
    });
  } finally {
    db.close();
  }
}

/** The device enrolled with issuer, or null. */
export async function loadDevice(issuer) {
  return (await run('readonly', (s) => s.get(issuer))) || null;
}

/** Stores (or replaces) the device record for its issuer. */
export function saveDevice(record) {
  return run('readwrite', (s) => s.put(record));
}

/** Deletes the device record, and with it the only copy of the private key. */
export function forgetDevice(issuer) {
  return run('readwrite', (s) => s.delete(issuer));
}
