// Countersign authenticator: the pending list, the request detail with approve and deny, history,
// devices, notifications and passkeys. It talks to the server only through the device API
// (docs/device-api.md), every call signed with this device's non-extractable key. Requests are
// re-fetched rather than trusted from notifications, and a decision is signed only over the
// `shown` content this screen displayed, after checking its hash.

import { APIError, DeviceAPI, IntegrityError, clockSkewSeconds, fetchConfig, issuerFromLocation } from './lib/api.js';
import { fromB64u } from './lib/b64.js';
import { checkView } from './lib/display.js';
import { formatRemaining, h, platformName, replace, spokenRemaining, timeEl } from './lib/dom.js';
import { canonicalSHA256, canonicalize } from './lib/jcs.js';
import { forgetDevice, loadDevice } from './lib/store.js';
import {
  assertOverDecision, attestationJSON, creationOptions, describeWebAuthnError, passkeysSupported,
} from './lib/webauthn.js';

const POLL_MS = 4000; // docs/device-api.md 9.5: every 3 to 5 seconds while open
const issuer = issuerFromLocation();

const el = {
  main: document.getElementById('main'),
  tabs: document.getElementById('tabs'),
  account: document.getElementById('account'),
  count: document.getElementById('pending-count'),
  banner: document.getElementById('banner'),
  toast: document.getElementById('toast'),
  announcer: document.getElementById('announcer'),
  dialog: document.getElementById('confirm'),
  install: document.getElementById('install'),
};

const state = {
  device: null,
  api: null,
  pending: [],
  loaded: false, // the pending list was fetched at least once
  pendingKey: '', // the ids of the pending list, to notice changes
  deadlines: new Map(), // request id -> performance.now() deadline, fixed when first seen
  config: undefined, // GET device/v1/config, null when the server has none
  view: null, // the current view's hooks: {onPending, onTick, dispose}
  offline: false,
};

// ---------------------------------------------------------------------------------------------
// Messages

let toastTimer = 0;
/** Shows a short message and announces it politely. */
function say(text) {
  clearTimeout(toastTimer);
  el.toast.textContent = text;
  el.toast.classList.toggle('show', text !== '');
  if (text) toastTimer = setTimeout(() => el.toast.classList.remove('show'), 5000);
}

/** Announces text to screen readers only (countdown milestones). */
function announce(text) {
  el.announcer.textContent = text;
}

function showBanner() {
  const skew = clockSkewSeconds();
  let text = '';
  if (state.offline) text = 'You are offline. Requests will appear when you reconnect.';
  else if (Math.abs(skew) >= 120) {
    text = `This device’s clock is off by about ${Math.round(Math.abs(skew) / 60)} minutes. `
      + 'Set the date and time automatically to avoid failed approvals.';
  }
  el.banner.textContent = text;
  el.banner.hidden = text === '';
}

/** An inline error box (role=alert) for the view. */
function errorBox(message) {
  return h('div', { class: 'alert', role: 'alert' }, message);
}

/** A confirmation dialog; resolves true when the user confirms. Cancel has the focus first. */
function confirmDialog({ title, text, ok, danger = true }) {
  const d = el.dialog;
  d.querySelector('#confirm-title').textContent = title;
  d.querySelector('#confirm-text').textContent = text;
  const okButton = d.querySelector('#confirm-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'btn danger' : 'btn primary';
  d.returnValue = '';
  const opener = document.activeElement;
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(d.returnValue === 'ok');
    }, { once: true });
    d.showModal();
    d.querySelector('#confirm-cancel').focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Errors from the API

/** Handles what every view must: a removed device, offline, clock. Returns a message to show. */
async function apiProblem(e) {
  if (e instanceof APIError && e.deviceGone) {
    await wipe('This device was removed from your account, so its key was erased from this browser.');
    return null;
  }
  if (e instanceof APIError && e.status === 0) {
    state.offline = true;
    showBanner();
  }
  if (e instanceof APIError && e.clockSkew) {
    return `${e.message} Set this device’s date and time automatically.`;
  }
  return (e && e.message) || String(e);
}

async function wipe(reason) {
  stopPolling();
  await unsubscribePushLocally().catch(() => {});
  await forgetDevice(issuer).catch(() => {});
  state.device = null;
  state.api = null;
  state.pending = [];
  state.loaded = false;
  updateCount();
  renderNotEnrolled(reason);
}

// ---------------------------------------------------------------------------------------------
// Polling and countdowns

let pollTimer = 0;
let refreshing = null;
let refreshAgain = false;

function startPolling() {
  stopPolling();
  pollTimer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = 0;
}

/** Fetches the pending list (coalescing concurrent calls) and tells the current view. */
function refresh() {
  if (!state.api) return Promise.resolve();
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        const list = await state.api.pending();
        state.offline = false;
        setPending(list);
      } catch (e) {
        const msg = await apiProblem(e);
        if (msg && !(e instanceof APIError && e.status === 0) && state.view && state.view.onPollError) {
          state.view.onPollError(msg);
        }
      }
      showBanner();
    } while (refreshAgain && state.api);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function setPending(list) {
  const now = performance.now();
  const seen = new Set();
  for (const r of list) {
    seen.add(r.id);
    if (!state.deadlines.has(r.id)) state.deadlines.set(r.id, now + Math.max(0, r.expires_in || 0) * 1000);
  }
  state.pending = list.filter((r) => remaining(r.id) > 0);
  const key = state.pending.map((r) => r.id).join(',');
  const changed = key !== state.pendingKey || !state.loaded;
  state.loaded = true;
  state.pendingKey = key;
  updateCount();
  if (state.view && state.view.onPending) state.view.onPending(changed);
}

/** Seconds left for a request (fractional), by its fixed local deadline. */
function remaining(id) {
  const d = state.deadlines.get(id);
  return d === undefined ? 0 : (d - performance.now()) / 1000;
}

function updateCount() {
  const n = state.pending.length;
  replace(el.count, n > 0 ? [String(n), h('span', { class: 'visually-hidden' }, ' waiting')] : []);
  document.title = n > 0 ? `(${n}) Countersign` : 'Countersign';
  if (navigator.setAppBadge) (n > 0 ? navigator.setAppBadge(n) : navigator.clearAppBadge()).catch(() => {});
}

let lastExpiredRefresh = 0;
function tick() {
  // Timers on screen: <span data-deadline-for="ID">.
  let expired = false;
  for (const t of document.querySelectorAll('[data-deadline-for]')) {
    const left = remaining(t.dataset.deadlineFor);
    const text = left > 0 ? formatRemaining(Math.ceil(left)) : 'expired';
    if (t.textContent !== text) t.textContent = text;
    if (left <= 0) expired = true;
  }
  if (state.view && state.view.onTick) state.view.onTick();
  // A request just ran out: drop it from the list now, and ask the server (at most once a second).
  if (expired && state.pending.some((r) => remaining(r.id) <= 0) && performance.now() - lastExpiredRefresh > 1000) {
    lastExpiredRefresh = performance.now();
    setPending(state.pending);
    refresh();
  }
}

// ---------------------------------------------------------------------------------------------
// Routing

function routeOf(hash) {
  const m = /^#\/requests\/([A-Za-z0-9_-]{1,100})$/.exec(hash);
  if (m) return { name: 'detail', id: m[1] };
  if (hash === '#/history') return { name: 'history' };
  if (hash === '#/devices') return { name: 'devices' };
  return { name: 'requests' };
}

function route() {
  if (!state.api) return;
  const r = routeOf(location.hash);
  if (r.name === 'requests' && location.hash !== '#/requests') history.replaceState(null, '', '#/requests');
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  for (const a of el.tabs.querySelectorAll('a')) {
    const current = a.dataset.route === r.name || (r.name === 'detail' && a.dataset.route === 'requests');
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  window.scrollTo(0, 0);
  switch (r.name) {
    case 'detail': return showDetail(r.id);
    case 'history': return showHistory();
    case 'devices': return showDevices();
    default: return showList();
  }
}

/** Puts a view's content in <main> and moves the focus to its heading (for screen readers). */
function mount(...children) {
  replace(el.main, ...children);
  const h1 = el.main.querySelector('h1');
  if (h1 && document.activeElement !== el.dialog) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Pending list

function summaryOf(r) {
  const texts = (r.rendered || []).map((d) => d.text).filter(Boolean);
  if (texts.length === 0) return r.binding_message || 'Access to your account';
  return texts.length === 1 ? texts[0] : `${texts[0]} and ${texts.length - 1} more`;
}

function requestCard(r) {
  return h('li', { class: 'card request-card', 'data-id': r.id },
    h('a', { class: 'card-link', href: `#/requests/${r.id}` },
      h('span', { class: 'client' }, r.client ? r.client.name : 'An agent'),
      h('span', { class: 'action' }, summaryOf(r)),
      r.binding_message ? h('span', { class: 'binding' }, `“${r.binding_message}”`) : null,
      h('span', { class: 'meta' },
        h('span', { class: 'timer-chip' }, h('span', { 'data-deadline-for': r.id }, formatRemaining(Math.ceil(remaining(r.id)))), ' left'),
        h('span', null, 'Asked ', timeEl(r.created_at)))));
}

function showList() {
  const list = h('ul', { class: 'cards', id: 'pending-list', 'aria-label': 'Requests waiting for you' });
  const summary = h('p', { class: 'muted', id: 'list-summary' });
  const body = h('div');
  const nudge = h('div');
  function draw() {
    const n = state.pending.length;
    summary.textContent = n === 0 ? '' : n === 1 ? 'One request is waiting for your decision.'
      : `${n} requests are waiting, oldest first.`;
    // Keep the keyboard focus on the same request when the list is redrawn.
    const focusedId = document.activeElement && document.activeElement.closest
      && document.activeElement.closest('[data-id]') && document.activeElement.closest('[data-id]').dataset.id;
    if (!state.loaded) {
      list.hidden = true;
      replace(body, h('p', { class: 'muted' }, 'Checking for requests…'));
    } else if (n === 0) {
      replace(list);
      list.hidden = true;
      replace(body, h('div', { class: 'empty', id: 'empty' },
        h('p', { class: 'empty-title' }, 'Nothing is waiting for you.'),
        h('p', { class: 'muted' }, 'New requests from your agents appear here as they arrive.')));
    } else {
      replace(body);
      list.hidden = false;
      replace(list, state.pending.map(requestCard));
      if (focusedId) {
        const link = list.querySelector(`[data-id="${CSS.escape(focusedId)}"] a`);
        if (link) link.focus();
      }
    }
  }
  draw();
  mount(h('h1', null, 'Waiting for you'), summary, nudge, body, list);
  pushNudge(nudge);
  let failing = false;
  state.view = {
    onPending(changed) {
      if (changed || failing) draw();
      failing = false;
    },
    onPollError(msg) {
      failing = true;
      replace(body, errorBox(msg));
    },
  };
  refresh();
}

/** On the list: a one-line offer to turn on notifications, when they would work and are off. */
async function pushNudge(container) {
  const s = await pushStatus();
  if (!s.available || s.subscribed || s.permission === 'denied') return;
  const button = h('button', { class: 'btn secondary small', type: 'button' }, 'Allow notifications');
  button.addEventListener('click', async () => {
    button.disabled = true;
    const msg = await enablePush();
    say(msg);
    replace(container, (await pushStatus()).subscribed ? null : errorBox(msg));
  });
  replace(container, h('div', { class: 'card nudge' },
    h('p', null, 'Get a notification as soon as an agent asks for your approval.'), button));
}

// ---------------------------------------------------------------------------------------------
// Request detail

const STATUS_TEXT = {
  pending: 'Waiting for your decision',
  approved: 'Approved',
  denied: 'Denied',
  expired: 'Expired',
  cancelled: 'Cancelled by the agent',
};

function statusChip(status) {
  return h('span', { class: `chip status-${status}` }, STATUS_TEXT[status] || status);
}

async function showDetail(id) {
  mount(h('h1', null, 'Loading request…'));
  let view;
  try {
    view = await state.api.request(id);
  } catch (e) {
    const msg = e instanceof APIError && e.status === 404
      ? 'This request does not exist, or it is not yours.' : await apiProblem(e);
    if (msg === null || location.hash !== `#/requests/${id}`) return;
    mount(h('h1', null, 'Request not available'), errorBox(msg), backLink());
    return;
  }
  if (!state.deadlines.has(view.id) && view.status === 'pending') {
    state.deadlines.set(view.id, performance.now() + Math.max(0, view.expires_in || 0) * 1000);
  }
  await renderDetail(view);
}

/** A field path in <code>, with line-break opportunities before each "." and "[". */
function pathCode(path) {
  const parts = path.split(/(?=[.[])/);
  return h('code', null, parts.map((part, i) => (i === 0 ? part : [h('wbr'), part])));
}

function backLink() {
  return h('p', { class: 'back' }, h('a', { href: '#/requests' }, '← All requests'));
}

async function renderDetail(view, outcome) {
  const check = checkView(view);
  let hashOK = false;
  let canonical = '';
  try {
    canonical = canonicalize(view.shown);
    hashOK = (await canonicalSHA256(view.shown)) === view.shown_sha256;
  } catch (e) {
    hashOK = false;
  }
  const shown = view.shown || {};
  const pending = view.status === 'pending' && remaining(view.id) > 0;
  const needsUV = view.require_user_verification === true;
  const choices = Array.isArray(view.verification_choices) ? view.verification_choices.map(String) : [];
  let picked = '';

  // --- Who asks, the message, the details, the access
  const header = [
    h('p', { class: 'eyebrow' }, pending ? 'Approval requested' : 'Request', ' · ', timeEl(view.created_at)),
    h('h1', { class: 'who' }, h('bdi', null, shown.client_name || 'An agent'), pending ? ' asks for your approval' : ''),
    h('p', { class: 'muted small' }, 'Agent ID: ', h('code', null, shown.client_id || '')),
  ];

  const timer = pending ? h('p', { class: 'timer', role: 'timer', id: 'timer' },
    'Expires in ', h('strong', { 'data-deadline-for': view.id }, formatRemaining(Math.ceil(remaining(view.id)))))
    : h('p', { class: 'status-line' }, statusChip(view.status),
      view.decision ? [' ', timeEl(view.decision.decided_at)] : null,
      view.decision && view.decision.device_id === state.device.deviceId ? ' from this device' : null,
      view.decision && view.decision.redeemed ? ' · the agent has collected its token' : null);

  const binding = shown.binding_message ? h('section', { class: 'block', 'aria-labelledby': 'bm-title' },
    h('h2', { id: 'bm-title' }, 'Message from the agent'),
    h('p', { class: 'binding-message', id: 'binding-message' }, h('bdi', null, shown.binding_message)),
    h('p', { class: 'hint' }, 'It should be the same message the agent shows you.')) : null;

  const details = h('section', { class: 'block', 'aria-labelledby': 'details-title' },
    h('h2', { id: 'details-title' }, check.details.length ? 'What it will be allowed to do' : 'What it asks'),
    check.details.length === 0 ? h('p', null, 'Access to your account with the scope below; no specific action is named.') : null,
    check.details.map((d, i) => h('div', { class: 'detail' },
      h('p', { class: 'action-text' }, h('bdi', null, d.text)),
      h('table', { class: 'fields' },
        h('caption', null, `Every field of this ${d.type} (${i + 1} of ${check.details.length})`),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Value'))),
        h('tbody', null, d.rows.map((row) => h('tr', { class: row.unlisted ? 'unlisted' : null },
          h('th', { scope: 'row' }, pathCode(row.path)),
          h('td', null, h('bdi', null, row.value),
            row.note ? h('span', { class: 'field-note' }, row.note) : null,
            row.unlisted ? h('span', { class: 'field-note' }, 'Not listed by the server') : null))))))),
    check.details.length ? h('p', { class: 'hint' },
      'The sentence above each table is a summary; the table lists everything you approve.') : null);

  const access = h('section', { class: 'block', 'aria-labelledby': 'access-title' },
    h('h2', { id: 'access-title' }, 'Access'),
    h('dl', { class: 'pairs' },
      h('dt', null, 'Permissions (scope)'),
      h('dd', null, (shown.scope || []).length ? shown.scope.map((s) => h('code', { class: 'token' }, s)) : 'None'),
      h('dt', null, 'For the APIs (audience)'),
      h('dd', null, (shown.audience || []).length ? shown.audience.map((a) => h('code', { class: 'token' }, a))
        : 'None named (only this server)')));

  // --- Integrity problems: nothing is signed over content we cannot vouch for.
  const problems = [];
  if (!hashOK) {
    problems.push('The content the server sent does not match its fingerprint (shown_sha256). This app will not sign a decision for it.');
  }
  problems.push(...check.problems);
  const integrity = problems.length ? h('div', { class: 'alert', role: 'alert', id: 'integrity-error' },
    h('p', null, h('strong', null, 'This request cannot be verified. Do not approve it.')),
    h('ul', null, problems.map((p) => h('li', null, p)))) : null;

  // --- Decision controls
  const feedback = h('div', { id: 'decision-feedback', 'aria-live': 'polite' });
  let actions = null;
  let approve = null;
  let deny = null;
  let report = null;
  let approveHint = null;
  let matching = null;
  let busy = false;

  function setEnabled() {
    const live = pending && remaining(view.id) > 0 && !busy;
    const blockedApprove = !hashOK || check.problems.length > 0 || (choices.length > 0 && picked === '')
      || (needsUV && !passkeysSupported());
    if (approve) approve.disabled = !live || blockedApprove;
    if (deny) deny.disabled = !live || !hashOK;
    if (report) report.disabled = !live || !hashOK;
    if (approveHint) {
      let hint = '';
      if (choices.length > 0 && picked === '' && live) hint = 'Pick the number the agent shows to enable Approve.';
      else if (needsUV && !passkeysSupported()) hint = 'This request needs a passkey, which this browser cannot use.';
      else if (needsUV) hint = 'Approving asks for your passkey (fingerprint, face or screen lock).';
      approveHint.textContent = hint;
      approveHint.hidden = hint === '';
    }
  }

  if (pending && !outcome) {
    if (choices.length > 0) {
      matching = h('fieldset', { class: 'matching block', id: 'number-matching' },
        h('legend', null, 'Which number does the agent show you?'),
        h('p', { class: 'hint', id: 'matching-hint' },
          'Pick the number shown where you asked the agent for this. If none matches, deny: someone else may be asking.'),
        h('div', { class: 'choices' }, choices.map((c, i) => {
          const input = h('input', { type: 'radio', name: 'verification-code', value: c, id: `choice-${i}`, 'aria-describedby': 'matching-hint' });
          input.addEventListener('change', () => { picked = c; setEnabled(); });
          return h('label', { class: 'choice', for: `choice-${i}` }, input, h('span', null, c));
        })));
    }
    approveHint = h('p', { class: 'hint', id: 'approve-hint', hidden: true });
    approve = h('button', { class: 'btn approve', id: 'approve', type: 'button', 'aria-describedby': 'approve-hint' },
      h('span', { 'aria-hidden': 'true', class: 'icon' }, '✓'), ' Approve');
    deny = h('button', { class: 'btn deny', id: 'deny', type: 'button' },
      h('span', { 'aria-hidden': 'true', class: 'icon' }, '✕'), ' Deny');
    report = h('button', { class: 'btn link danger-text', id: 'deny-report', type: 'button' }, 'Not me: deny and report…');
    approve.addEventListener('click', () => decide('approve'));
    deny.addEventListener('click', () => decide('deny'));
    report.addEventListener('click', () => decide('deny', true));
    actions = h('section', { class: 'decide', 'aria-label': 'Your decision' },
      matching,
      h('div', { class: 'actions' }, approve, deny),
      approveHint,
      h('p', { class: 'report-line' }, report));
    setEnabled();
  }

  async function decide(kind, isReport = false) {
    if (busy) return;
    if (isReport) {
      const ok = await confirmDialog({
        title: 'Deny and report this request?',
        text: `Use this if you did not ask ${shown.client_name || 'this agent'} for this. The request is denied, `
          + 'your administrator is told, and further requests from this agent to you are held for a while.',
        ok: 'Deny and report',
      });
      if (!ok) return;
    }
    busy = true;
    setEnabled();
    const button = isReport ? report : kind === 'approve' ? approve : deny;
    button.setAttribute('aria-busy', 'true');
    replace(feedback, h('p', { class: 'muted' }, kind === 'approve' ? 'Signing your approval…' : 'Signing your denial…'));
    const opts = { report: isReport };
    if (kind === 'approve' && choices.length > 0) opts.verificationCode = picked;
    if (kind === 'approve' && needsUV) {
      opts.stepUp = async (signed) => {
        replace(feedback, h('p', { class: 'muted' }, 'Confirm with your passkey…'));
        try {
          return await assertOverDecision(signed, view.passkey_credential_ids);
        } catch (e) {
          throw new Error(describeWebAuthnError(e));
        }
      };
    }
    try {
      const updated = await state.api.decide(view, kind, opts);
      const word = updated.status === 'approved' ? 'Approved' : 'Denied';
      say(`${word}: ${shown.client_name || 'the agent'} has been told.`);
      state.pending = state.pending.filter((r) => r.id !== view.id);
      updateCount();
      await renderDetail(updated, { kind, report: isReport });
      refresh();
    } catch (e) {
      busy = false;
      button.removeAttribute('aria-busy');
      if (e instanceof APIError && e.status === 409) {
        // Decided elsewhere, expired or cancelled: show the current state.
        let fresh = null;
        try { fresh = await state.api.request(view.id); } catch (ignored) { /* keep the old view */ }
        if (fresh) {
          await renderDetail(fresh);
          replace(document.getElementById('decision-feedback'), errorBox(e.message));
          return;
        }
      }
      const msg = e instanceof IntegrityError ? e.message : e instanceof APIError ? await apiProblem(e) : e.message;
      if (msg === null) return;
      replace(feedback, errorBox(msg));
      setEnabled();
    }
  }

  const result = outcome ? h('div', { class: `result result-${view.status}`, id: 'result', tabindex: '-1' },
    h('p', { class: 'result-title' },
      h('span', { 'aria-hidden': 'true', class: 'icon' }, view.status === 'approved' ? '✓' : '✕'),
      view.status === 'approved' ? ' Approved' : outcome.report ? ' Denied and reported' : ' Denied'),
    h('p', null, view.status === 'approved'
      ? `${shown.client_name || 'The agent'} can now go ahead with exactly what is shown here.`
      : `${shown.client_name || 'The agent'} has been told no.`),
    h('p', null, h('a', { href: '#/requests', class: 'btn secondary' }, 'Back to requests'))) : null;

  const technical = h('details', { class: 'technical' },
    h('summary', null, 'Technical details'),
    h('dl', { class: 'pairs' },
      h('dt', null, 'Request ID'), h('dd', null, h('code', null, view.id)),
      h('dt', null, 'Content fingerprint (SHA-256)'),
      h('dd', null, h('code', null, view.shown_sha256 || ''), hashOK ? ' ✓ verified on this device' : ' ✕ does not match'),
      h('dt', null, 'Signed content (RFC 8785 JSON)'), h('dd', null, h('pre', { class: 'json' }, canonical || '(not canonicalizable)'))));

  if (location.hash !== `#/requests/${view.id}`) return; // the user went elsewhere meanwhile
  mount(backLink(), ...header, timer, result, integrity, binding, details, access, actions, feedback, technical);
  if (result) result.focus();

  let announced = Infinity;
  state.view = {
    onTick() {
      if (!pending || outcome) return;
      const left = remaining(view.id);
      for (const mark of [60, 30, 10, 0]) {
        if (left <= mark && announced > mark) {
          announced = mark;
          announce(mark === 0 ? 'The request has expired.' : `${spokenRemaining(mark)} left to decide.`);
        }
      }
      if (left <= 0 && approve && !approve.dataset.expired) {
        approve.dataset.expired = '1';
        setEnabled();
        replace(feedback, errorBox('This request has expired. The agent must ask again.'));
      }
    },
    async onPending() {
      // The request left the pending list while we show it: decided elsewhere, cancelled, expired.
      if (!pending || outcome || busy || state.pending.some((r) => r.id === view.id)) return;
      try {
        const fresh = await state.api.request(view.id);
        if (fresh.status !== 'pending' && state.view && state.view.id === view.id) {
          await renderDetail(fresh);
          say(`This request is now: ${(STATUS_TEXT[fresh.status] || fresh.status).toLowerCase()}.`);
        }
      } catch (e) { /* the next poll retries */ }
    },
    id: view.id,
  };
}

// ---------------------------------------------------------------------------------------------
// History

async function showHistory() {
  const list = h('ul', { class: 'cards', id: 'history-list', 'aria-label': 'Recent requests' });
  const status = h('div');
  mount(h('h1', null, 'History'), h('p', { class: 'muted' }, 'Your 50 most recent requests, newest first.'), status, list);
  async function load() {
    try {
      const items = await state.api.history(50);
      if (items.length === 0) {
        replace(status, h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, 'No requests yet.')));
      } else replace(status);
      replace(list, items.map((r) => h('li', { class: 'card history-card', 'data-id': r.id, 'data-status': r.status },
        h('a', { class: 'card-link', href: `#/requests/${r.id}` },
          h('span', { class: 'row' }, h('span', { class: 'client' }, r.client ? r.client.name : 'An agent'), statusChip(r.status)),
          h('span', { class: 'action' }, summaryOf(r)),
          r.binding_message ? h('span', { class: 'binding' }, `“${r.binding_message}”`) : null,
          h('span', { class: 'meta' }, h('span', null, 'Asked ', timeEl(r.created_at)),
            r.decision ? h('span', null, 'Decided ', timeEl(r.decision.decided_at)) : null)))));
    } catch (e) {
      const msg = await apiProblem(e);
      if (msg !== null) replace(status, errorBox(msg));
    }
  }
  state.view = { onPending(changed) { if (changed) load(); } };
  await load();
}

// ---------------------------------------------------------------------------------------------
// Devices, notifications, passkeys

async function showDevices() {
  const here = h('section', { class: 'panel', 'aria-labelledby': 'here-title' },
    h('h2', { id: 'here-title' }, 'This browser'),
    h('dl', { class: 'pairs' },
      h('dt', null, 'Account'), h('dd', null, state.device.sub),
      h('dt', null, 'Server'), h('dd', null, new URL(issuer).host),
      h('dt', null, 'Device name'), h('dd', null, state.device.name || '—'),
      h('dt', null, 'Device ID'), h('dd', null, h('code', null, state.device.deviceId))));
  const notif = h('section', { class: 'panel', 'aria-labelledby': 'notif-title', id: 'notifications' },
    h('h2', { id: 'notif-title' }, 'Notifications'));
  const passkeys = h('section', { class: 'panel', 'aria-labelledby': 'pk-title', id: 'passkeys' },
    h('h2', { id: 'pk-title' }, 'Passkeys'));
  const devices = h('section', { class: 'panel', 'aria-labelledby': 'dev-title' },
    h('h2', { id: 'dev-title' }, 'Your devices'), h('p', { class: 'muted' }, 'Loading…'));
  mount(h('h1', null, 'Devices'), here, devices, notif, passkeys);
  state.view = {};
  await Promise.all([drawNotifications(notif), drawPasskeys(passkeys), drawDevices(devices)]);
}

async function drawNotifications(section) {
  const title = section.querySelector('h2');
  const s = await pushStatus();
  const body = [];
  if (!s.supported) {
    body.push(h('p', null, 'This browser cannot receive push notifications. Keep the app open, or install it to your home screen first (on iPhone and iPad).'));
  } else if (!s.available) {
    body.push(h('p', null, 'This server does not send push notifications yet. Keep the app open to see new requests.'));
  } else if (s.permission === 'denied') {
    body.push(h('p', null, 'Notifications are blocked for this site. Allow them in your browser’s site settings, then come back.'));
  } else if (s.subscribed) {
    const off = h('button', { class: 'btn secondary', type: 'button', id: 'push-off' }, 'Turn off notifications');
    off.addEventListener('click', async () => {
      off.disabled = true;
      say(await disablePush());
      drawNotifications(section);
    });
    body.push(h('p', null, 'On. You are notified here when an agent asks for your approval.'), off);
  } else {
    const on = h('button', { class: 'btn primary', type: 'button', id: 'push-on' }, 'Allow notifications');
    on.addEventListener('click', async () => {
      on.disabled = true;
      const msg = await enablePush();
      say(msg);
      await drawNotifications(section);
      if (!(await pushStatus()).subscribed) section.append(errorBox(msg));
    });
    body.push(h('p', null, 'Get a notification as soon as an agent asks for your approval.'), on);
  }
  replace(section, title, ...body);
}

async function drawPasskeys(section) {
  const title = section.querySelector('h2');
  let list;
  try {
    list = await state.api.passkeys();
  } catch (e) {
    if (e instanceof APIError && (e.status === 404 || e.status === 405)) {
      replace(section, title, h('p', { class: 'muted' }, 'This server does not support passkeys yet.'));
      return;
    }
    const msg = await apiProblem(e);
    if (msg !== null) replace(section, title, errorBox(msg));
    return;
  }
  const add = h('button', { class: 'btn secondary', type: 'button', id: 'passkey-add' }, 'Add a passkey');
  const feedback = h('div', { 'aria-live': 'polite' });
  add.disabled = !passkeysSupported();
  add.addEventListener('click', async () => {
    add.disabled = true;
    replace(feedback, h('p', { class: 'muted' }, 'Follow your browser’s prompt…'));
    try {
      const options = await state.api.passkeyOptions();
      const cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
      await state.api.registerPasskey(attestationJSON(cred), state.device.name || `Browser on ${platformName()}`);
      say('Passkey added.');
      await drawPasskeys(section);
    } catch (e) {
      add.disabled = false;
      const msg = e instanceof APIError ? await apiProblem(e) : describeWebAuthnError(e);
      if (msg !== null) replace(feedback, errorBox(msg));
    }
  });
  replace(section, title,
    h('p', null, 'Some requests ask you to confirm with a passkey (fingerprint, face or screen lock) before approving.'),
    list.length ? h('ul', { class: 'plain', id: 'passkey-list' }, list.map((p) => h('li', null,
      h('span', { class: 'strong' }, p.name || 'Passkey'), ' · added ', timeEl(p.created_at),
      p.last_used_at ? [' · last used ', timeEl(p.last_used_at)] : null)))
      : h('p', { class: 'muted', id: 'passkey-none' }, 'No passkey yet.'),
    passkeysSupported() ? add : h('p', { class: 'muted' }, 'This browser cannot create passkeys.'),
    feedback);
}

async function drawDevices(section) {
  const title = section.querySelector('h2');
  let list;
  try {
    list = await state.api.devices();
  } catch (e) {
    const msg = await apiProblem(e);
    if (msg !== null) replace(section, title, errorBox(msg));
    return;
  }
  replace(section, title, h('ul', { class: 'device-list', id: 'device-list' }, list.map((d) => {
    const removed = Boolean(d.revoked_at);
    const remove = removed ? null : h('button', { class: 'btn danger-outline small', type: 'button', 'data-remove': d.id },
      d.current ? 'Remove this browser' : 'Remove', h('span', { class: 'visually-hidden' }, d.current ? '' : ` ${d.name}`));
    if (remove) remove.addEventListener('click', () => removeDevice(d, section));
    return h('li', { class: `device${removed ? ' removed' : ''}`, 'data-id': d.id },
      h('div', null,
        h('p', { class: 'device-name' }, h('bdi', null, d.name), d.current ? h('span', { class: 'chip status-current' }, 'This browser') : null),
        h('p', { class: 'muted small' }, `${d.kind} · enrolled `, timeEl(d.created_at),
          removed ? [' · removed ', timeEl(d.revoked_at)] : null)),
      remove);
  })));
}

async function removeDevice(d, section) {
  const ok = await confirmDialog(d.current ? {
    title: 'Remove this browser?',
    text: 'Its key is erased and it can no longer approve anything. To use this browser again you will need a new invitation.',
    ok: 'Remove this browser',
  } : {
    title: `Remove “${d.name}”?`,
    text: 'It will no longer be able to approve or deny requests. This cannot be undone: the device would need a new invitation.',
    ok: 'Remove device',
  });
  if (!ok) return;
  try {
    if (d.current) await state.api.deletePushSubscription().catch(() => {});
    await state.api.removeDevice(d.id);
  } catch (e) {
    const msg = await apiProblem(e);
    if (msg !== null) say(msg);
    return;
  }
  if (d.current) {
    await wipe('This browser was removed from your devices and its key was erased.');
    return;
  }
  say(`Removed ${d.name}.`);
  await drawDevices(section);
}

// --- Web Push

async function config() {
  if (state.config === undefined) {
    try {
      state.config = await fetchConfig(issuer);
    } catch (e) {
      return null; // offline: try again next time
    }
  }
  return state.config;
}

function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** {supported, available (the server has a VAPID key), permission, subscribed}. */
async function pushStatus() {
  if (!pushSupported()) return { supported: false, available: false, permission: 'default', subscribed: false };
  const cfg = await config();
  const available = Boolean(cfg && cfg.vapid_public_key);
  let subscribed = false;
  if (available && Notification.permission === 'granted') {
    const reg = await navigator.serviceWorker.getRegistration();
    subscribed = Boolean(reg && await reg.pushManager.getSubscription());
  }
  return { supported: true, available, permission: Notification.permission, subscribed };
}

function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  })]).finally(() => clearTimeout(timer));
}

function sameKey(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** Subscribes (after the user's click) and registers the subscription. Returns a message. */
async function enablePush() {
  try {
    const cfg = await config();
    if (!cfg || !cfg.vapid_public_key) return 'This server does not send push notifications yet.';
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') return 'Notifications were not allowed. You can change this in the browser’s site settings.';
    const reg = await navigator.serviceWorker.ready;
    const key = fromB64u(cfg.vapid_public_key);
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub.options.applicationServerKey, key)) {
      await sub.unsubscribe(); // made for another server key: useless now
      sub = null;
    }
    if (!sub) {
      // The browser's push service may be unreachable (a firewall, no Google services): do not
      // leave the user waiting forever.
      sub = await withTimeout(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), 20_000,
        'The browser’s push service did not answer. Try again later, or keep the app open to see new requests.');
    }
    await state.api.putPushSubscription(sub.toJSON());
    return 'Notifications are on.';
  } catch (e) {
    if (e instanceof APIError) return (await apiProblem(e)) || '';
    if (e && e.name === 'AbortError') return 'This browser could not reach its push service. Try again later.';
    return (e && e.message) || String(e);
  }
}

async function disablePush() {
  try {
    await state.api.deletePushSubscription();
  } catch (e) {
    if (!(e instanceof APIError && e.status === 404)) return (await apiProblem(e)) || '';
  }
  await unsubscribePushLocally();
  return 'Notifications are off for this browser.';
}

async function unsubscribePushLocally() {
  if (!('serviceWorker' in navigator)) return;
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && await reg.pushManager.getSubscription();
  if (sub) await sub.unsubscribe();
}

/** On start: tell the server our subscription again (it may have dropped or rotated it). */
async function resendPushSubscription() {
  if (!pushSupported() || Notification.permission !== 'granted') return;
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && await reg.pushManager.getSubscription();
  const cfg = await config();
  if (!sub || !cfg || !cfg.vapid_public_key) return;
  if (!sameKey(sub.options.applicationServerKey, fromB64u(cfg.vapid_public_key))) {
    await sub.unsubscribe();
    return;
  }
  await state.api.putPushSubscription(sub.toJSON());
}

// ---------------------------------------------------------------------------------------------
// Not enrolled

function renderNotEnrolled(reason) {
  el.tabs.hidden = true;
  replace(el.account);
  if (state.view && state.view.dispose) state.view.dispose();
  state.view = null;
  const input = h('input', { id: 'invitation', type: 'url', inputmode: 'url', autocomplete: 'off', required: true,
    placeholder: `${issuer}enroll#code=…`, 'aria-describedby': 'invitation-hint' });
  const error = h('div', { class: 'alert', role: 'alert', hidden: true });
  const form = h('form', { class: 'card stack', novalidate: true },
    h('label', { for: 'invitation' }, 'Invitation link'),
    input,
    h('p', { class: 'hint', id: 'invitation-hint' }, 'Paste the link if you cannot open it on this device directly.'),
    error,
    h('button', { class: 'btn primary', type: 'submit' }, 'Continue'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    let u;
    try {
      u = new URL(input.value.trim());
    } catch (e) {
      u = null;
    }
    const ok = u && u.origin === location.origin && u.pathname.endsWith('/enroll')
      && new URLSearchParams(u.hash.slice(1)).get('code');
    if (!ok) {
      error.textContent = `That is not an invitation for this server (${location.host}).`;
      error.hidden = false;
      input.focus();
      return;
    }
    location.assign(u.href);
  });
  mount(
    h('h1', null, 'Set up this browser'),
    reason ? h('p', { class: 'note', role: 'status' }, reason) : null,
    h('p', { class: 'lead' }, 'To approve or deny what agents ask for you, this browser needs to be set up once with an invitation link from your administrator.'),
    h('p', null, 'Open the link on this device; it looks like ', h('code', null, `${issuer}enroll#code=…`), '.'),
    form);
}

// ---------------------------------------------------------------------------------------------
// Service worker and start

// Trusted Types (required by our CSP): the only script URL this app ever creates.
const ttPolicy = window.trustedTypes && window.trustedTypes.createPolicy
  ? window.trustedTypes.createPolicy('countersign', {
    createScriptURL(u) {
      if (u === './sw.js') return u;
      throw new TypeError(`refusing script URL ${u}`);
    },
  })
  : null;

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  const url = ttPolicy ? ttPolicy.createScriptURL('./sw.js') : './sw.js';
  navigator.serviceWorker.register(url, { scope: './', updateViaCache: 'none' }).catch((e) => {
    console.warn('service worker registration failed', e);
  });
  navigator.serviceWorker.addEventListener('message', (ev) => {
    const msg = ev.data || {};
    if (msg.type === 'refresh') refresh();
    if (msg.type === 'open' && typeof msg.url === 'string') {
      // From a notification click: open the request it names (an app URL of ours only).
      let u;
      try { u = new URL(msg.url, location.href); } catch (e) { return; }
      if (u.origin === location.origin && u.pathname === location.pathname && routeOf(u.hash).name === 'detail') {
        location.hash = u.hash;
      }
      refresh();
    }
  });
}

let installPrompt = null;
window.addEventListener('beforeinstallprompt', (ev) => {
  ev.preventDefault();
  installPrompt = ev;
  el.install.hidden = false;
});
el.install.addEventListener('click', async () => {
  if (!installPrompt) return;
  el.install.hidden = true;
  installPrompt.prompt();
  installPrompt = null;
});

async function boot() {
  registerServiceWorker();
  state.device = await loadDevice(issuer).catch(() => null);
  if (!state.device) {
    renderNotEnrolled();
    return;
  }
  state.api = new DeviceAPI(state.device);
  replace(el.account, h('span', { class: 'visually-hidden' }, 'Approving for '), `${state.device.sub} · ${new URL(issuer).host}`);
  el.tabs.hidden = false;
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refresh();
  });
  window.addEventListener('online', () => { state.offline = false; showBanner(); refresh(); });
  window.addEventListener('offline', () => { state.offline = true; showBanner(); });
  setInterval(tick, 250);
  startPolling();
  route();
  resendPushSubscription().catch(() => {});
}

boot().catch((e) => {
  replace(el.main, h('h1', null, 'Something went wrong'), errorBox(String((e && e.message) || e)));
});
