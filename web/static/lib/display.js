// What the user reads must be what the device signs (docs/device-api.md section 6). The app renders
// the client, binding message, scope and audience from `shown` itself, and rebuilds every field of
// every authorization detail from `shown.authorization_details` to check the server's `rendered`
// fields against it. The server's field values are displayed (they keep numbers as the agent wrote
// them, "135.50"), but only once each is proven to be the same content as the signed one.

// Go's unicode.Bidi_Control and unicode.IsControl (plus U+FFFD), as the server's stripControls.
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
const CONTROL = /[\u0000-\u001F\u007F-\u009F\uFFFD]/g;

/** The server's stripControls: control characters become spaces, bidi controls are removed. */
export function stripControls(s) {
  return s.replace(BIDI, '').replace(CONTROL, ' ');
}

/** The server's cleanDisplay: stripControls, trimmed, cut to 512 characters with an ellipsis. */
export function cleanDisplay(s) {
  const t = stripControls(s).trim();
  const chars = Array.from(t);
  return chars.length > 512 ? chars.slice(0, 511).join('') + '…' : t;
}

/**
 * Every leaf of a detail object as {path, value, raw}: members in sorted order joined with ".",
 * array elements as [i], empty arrays as "[]", nested empty objects as "{}", null as "null".
 * value is the display text for strings, booleans and null, and the number itself for numbers.
 */
export function flatten(v, prefix = '', out = []) {
  if (Array.isArray(v)) {
    if (v.length === 0) out.push({ path: prefix, value: '[]' });
    v.forEach((e, i) => flatten(e, `${prefix}[${i}]`, out));
  } else if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    if (keys.length === 0 && prefix !== '') out.push({ path: prefix, value: '{}' });
    for (const k of keys) flatten(v[k], prefix === '' ? k : `${prefix}.${k}`, out);
  } else if (v === null) {
    out.push({ path: prefix, value: 'null' });
  } else if (typeof v === 'string') {
    out.push({ path: prefix, value: stripControls(v) });
  } else if (typeof v === 'number') {
    out.push({ path: prefix, value: v });
  } else {
    out.push({ path: prefix, value: String(v) });
  }
  return out;
}

const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

function sameLeaf(expected, shownText) {
  if (typeof expected === 'number') {
    return JSON_NUMBER.test(shownText) && Number(shownText) === expected;
  }
  return shownText === expected;
}

// A number with more than 15 significant digits may not survive as an IEEE-754 double, which is what
// the signature covers (docs/device-api.md 9.3): say what is actually signed.
function precisionNote(signed, text) {
  if (typeof signed !== 'number') return '';
  const digits = text.replace(/^-/, '').replace(/[eE].*$/, '').replace('.', '').replace(/^0+/, '');
  if (digits.replace(/0+$/, '').length <= 15 || String(signed) === text) return '';
  return `More digits than can be signed exactly: the approval covers ${String(signed)}.`;
}

function sameStrings(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Checks a RequestView: that its top-level members equal their `shown` counterparts and that the
 * rendered fields are exactly the leaves of the signed details. Returns {problems, details}, where
 * details[i] = {type, text, rows: [{path, value, unlisted, note}]} is what to display for detail i.
 * problems is a list of sentences; when it is not empty, the app does not offer to approve.
 */
export function checkView(view) {
  const problems = [];
  const shown = view.shown || {};
  const signed = Array.isArray(shown.authorization_details) ? shown.authorization_details : [];
  const rendered = Array.isArray(view.rendered) ? view.rendered : [];
  if (shown.request_id !== view.id) problems.push('The signed content names another request.');
  if (!view.client || shown.client_id !== view.client.id || shown.client_name !== view.client.name) {
    problems.push('The agent named in the signed content differs from the one displayed.');
  }
  if ((view.binding_message || '') !== shown.binding_message) {
    problems.push('The binding message differs from the signed one.');
  }
  if (!sameStrings(view.scope || [], shown.scope) || !sameStrings(view.audience || [], shown.audience)) {
    problems.push('The scope or audience differs from the signed ones.');
  }
  if (rendered.length !== signed.length) {
    problems.push(`The server described ${rendered.length} detail(s) but ${signed.length} are signed.`);
  }
  const details = signed.map((d, i) => {
    const r = rendered[i] || { fields: [] };
    const type = d && typeof d.type === 'string' ? d.type : '(no type)';
    if (rendered[i] && r.type !== d.type) problems.push(`Detail ${i + 1}: the type differs from the signed one.`);
    // Paths can repeat ({"a.b": 1, "a": {"b": 2}} gives "a.b" twice), so each path keeps a list.
    const leaves = new Map();
    for (const l of flatten(d)) leaves.set(l.path, [...(leaves.get(l.path) || []), l]);
    const rows = [];
    for (const f of Array.isArray(r.fields) ? r.fields : []) {
      const candidates = leaves.get(f.path) || [];
      const at = candidates.findIndex((l) => sameLeaf(l.value, f.value));
      if (typeof f.value !== 'string' || at < 0) {
        problems.push(`Detail ${i + 1}: the field "${f.path}" is not what is signed.`);
        continue;
      }
      const [leaf] = candidates.splice(at, 1);
      rows.push({ path: f.path, value: f.value, unlisted: false, note: precisionNote(leaf.value, f.value) });
    }
    // Signed leaves the server did not list: shown too, from the signed content, and flagged.
    for (const list of leaves.values()) {
      for (const leaf of list) {
        problems.push(`Detail ${i + 1}: the signed field "${leaf.path}" was not listed by the server.`);
        rows.push({ path: leaf.path, value: String(leaf.value), unlisted: true, note: '' });
      }
    }
    const text = typeof r.text === 'string' && r.text !== '' ? r.text : type;
    return { type, text, rows };
  });
  return { problems, details };
}
