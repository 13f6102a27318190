// Small DOM helpers. The app builds every element with createElement and sets text with
// textContent: no HTML strings, ever (and Trusted Types enforce it).

/**
 * h('button', {class: 'primary', onclick: f, disabled: true}, 'Approve') creates an element.
 * Props: class, text, on<event> handlers, boolean attributes (true sets, false/null omits), and any
 * other attribute as a string. Children are nodes or strings (null and false are skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** "4:05", "1:02:03", or "2 d 3 h" for long ones. */
export function formatRemaining(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** "4 minutes 5 seconds", for screen readers. */
export function spokenRemaining(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const parts = [];
  const unit = (n, word) => parts.push(`${n} ${word}${n === 1 ? '' : 's'}`);
  if (s >= 3600) unit(Math.floor(s / 3600), 'hour');
  if (s >= 60) unit(Math.floor((s % 3600) / 60), 'minute');
  if (s < 600) unit(s % 60, 'second');
  return parts.join(' ');
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** A local, human date and time for an RFC 3339 string ("" if absent). */
export function formatTime(rfc3339) {
  const d = new Date(rfc3339);
  if (!rfc3339 || Number.isNaN(d.getTime())) return '';
  const today = new Date();
  return d.toDateString() === today.toDateString() ? `Today ${timeOnly.format(d)}` : dateTime.format(d);
}

/** A <time> element for an RFC 3339 string. */
export function timeEl(rfc3339) {
  return h('time', { datetime: rfc3339 }, formatTime(rfc3339));
}

/** A short name for this platform: "Android", "iPhone", "macOS", "Windows", "Linux", ... */
export function platformName() {
  const ua = navigator.userAgent || '';
  const hint = (navigator.userAgentData && navigator.userAgentData.platform) || '';
  if (/Android/i.test(ua)) return 'Android';
  if (/iPhone/i.test(ua)) return 'iPhone';
  if (/iPad/i.test(ua)) return 'iPad';
  if (/CrOS/i.test(ua) || /Chrome OS/i.test(hint)) return 'ChromeOS';
  if (/Mac/i.test(ua) || /mac/i.test(hint)) return 'macOS';
  if (/Win/i.test(ua) || /Windows/i.test(hint)) return 'Windows';
  if (/Linux/i.test(ua) || /Linux/i.test(hint)) return 'Linux';
  return hint || 'this device';
}
