// The canonicalization vectors of docs/device-api.md 8.4, with RequestViews around them. The same
// file feeds the browser test (browser_test.go).
import { readFileSync } from 'node:fs';

export const vectors = JSON.parse(readFileSync(new URL('./jcs-vectors.json', import.meta.url), 'utf8'));
