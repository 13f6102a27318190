// The page an invitation link opens: {issuer}enroll#code=CODE. It reads the one-time code from the
// fragment (which the browser never sends to any server) and removes it from the address bar and
// history at once, shows the user which server they are about to trust, asks for a device name,
// then generates a non-extractable P-256 key, enrolls it (docs/device-api.md section 3) and opens
// the app.

import { enroll, DeviceAPI, issuerFromLocation, nowSeconds } from './lib/api.js';
import { h, replace, platformName } from './lib/dom.js';
import { generateDeviceKey, publicJWK, signJWS } from './lib/jws.js';
import { loadDevice, saveDevice } from './lib/store.js';

const main = document.getElementById('main');
const toast = document.getElementById('toast');
const issuer = issuerFromLocation();
const code = new URLSearchParams(location.hash.slice(1)).get('code');
if (location.hash) history.replaceState(null, '', location.pathname + location.search);

function say(text) {
  toast.textContent = text;
  toast.classList.toggle('show', text !== '');
}

function serverCard() {
  const u = new URL(issuer);
  const secure = u.protocol === 'https:';
  return h('section', { class: 'card server-card', 'aria-labelledby': 'server-title' },
    h('h2', { id: 'server-title', class: 'eyebrow' }, 'Server you are about to trust'),
    h('p', { class: 'server-host', id: 'server-host' }, u.host + (u.pathname !== '/' ? u.pathname : '')),
    secure ? null : h('p', { class: 'hint' }, u.hostname === 'localhost' || u.hostname === '127.0.0.1'
      ? 'A server on this computer (not encrypted, which is fine for testing only).'
      : 'This connection is not encrypted (HTTP).'),
    h('p', { class: 'hint' }, 'Continue only if you expected an invitation from this server.'));
}

async function start() {
  if (!window.isSecureContext || !crypto.subtle || !window.indexedDB) {
    replace(main,
      h('h1', { tabindex: '-1' }, 'This browser cannot be set up here'),
      h('p', { class: 'alert', role: 'alert' },
        'Creating a device key needs a secure connection (HTTPS) and a browser with WebCrypto and IndexedDB. '
        + 'Open the invitation over HTTPS, or in another browser.'));
    return;
  }
  const existing = await loadDevice(issuer).catch(() => null);
  if (!code) {
    replace(main,
      h('h1', { tabindex: '-1' }, 'This link has no invitation code'),
      h('p', { class: 'lead' }, 'Open the invitation link exactly as you received it, or ask your administrator for a new one. '
        + 'Each invitation works once.'),
      existing ? h('p', null, h('a', { class: 'btn primary', href: 'app/' }, 'Open your authenticator')) : null);
    return;
  }
  renderForm(existing);
}

function renderForm(existing) {
  const nameInput = h('input', {
    id: 'device-name', name: 'name', type: 'text', maxlength: '64', autocomplete: 'off', required: true,
    'aria-describedby': 'device-name-hint', value: `Browser on ${platformName()}`,
  });
  const error = h('div', { id: 'enroll-error', class: 'alert', role: 'alert', hidden: true });
  const submit = h('button', { id: 'enroll-submit', class: 'btn primary wide', type: 'submit' }, 'Set up this device');
  const form = h('form', { class: 'card stack', novalidate: true },
    h('label', { for: 'device-name' }, 'Name for this device'),
    nameInput,
    h('p', { id: 'device-name-hint', class: 'hint' }, 'You will see it in your list of devices, for example “Alice’s phone”.'),
    error,
    submit);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run(nameInput.value.trim(), existing, { submit, error, nameInput });
  });
  replace(main,
    h('h1', { tabindex: '-1' }, 'Set up this device to approve requests'),
    h('p', { class: 'lead' }, 'With this invitation, this browser will be able to approve or deny what AI agents ask to do for you.'),
    serverCard(),
    existing ? h('p', { class: 'note' },
      `This browser is already set up for ${existing.sub} on this server. Continuing replaces its key; the old one is removed from your devices.`) : null,
    form,
    h('p', { class: 'hint' }, 'A signing key is created in this browser and never leaves it. Nothing is installed, and no password is involved.'));
  nameInput.focus();
}

async function run(name, existing, ui) {
  ui.error.hidden = true;
  if (name === '') {
    ui.error.textContent = 'Give this device a name.';
    ui.error.hidden = false;
    ui.nameInput.focus();
    return;
  }
  ui.submit.disabled = true;
  ui.submit.setAttribute('aria-busy', 'true');
  ui.submit.textContent = 'Setting up…';
  say('Creating a key on this device…');
  try {
    const keys = await generateDeviceKey();
    const jwk = await publicJWK(keys.publicKey);
    const enrollment = await signJWS(keys.privateKey,
      { alg: 'ES256', typ: 'countersign-enroll+jwt', jwk },
      { aud: issuer, code, name, kind: 'web', iat: nowSeconds() });
    const out = await enroll(issuer, enrollment);
    if (out.issuer !== issuer) {
      throw new Error(`The server answered for another issuer (${out.issuer}). This browser was not set up.`);
    }
    await saveDevice({
      issuer, deviceId: out.device_id, sub: out.sub, name, privateKey: keys.privateKey, publicJWK: jwk,
      enrolledAt: new Date().toISOString(),
    });
    // Ask the browser not to evict the key under storage pressure: losing it is silent and final.
    if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
    if (existing && existing.deviceId !== out.device_id) {
      // The old key is gone from this browser: retire its device so the list stays truthful.
      new DeviceAPI(existing).removeDevice(existing.deviceId).catch(() => {});
    }
    replace(main,
      h('h1', { tabindex: '-1' }, 'This device is set up'),
      h('p', { class: 'lead' }, `It can now approve requests for ${out.sub}. Opening your authenticator…`),
      h('p', null, h('a', { class: 'btn primary', href: 'app/' }, 'Open the authenticator')));
    main.querySelector('h1').focus();
    say('This device is set up.');
    setTimeout(() => location.replace('app/'), 700);
  } catch (e) {
    ui.submit.disabled = false;
    ui.submit.removeAttribute('aria-busy');
    ui.submit.textContent = 'Set up this device';
    say('');
    ui.error.textContent = explain(e);
    ui.error.hidden = false;
  }
}

function explain(e) {
  const msg = (e && e.message) || 'Something went wrong.';
  if (e && e.clockSkew) return msg + ' Set this device’s date and time automatically, then retry.';
  if (e && /expired|unknown|already used/.test(msg)) return msg;
  if (e && e.status === 0) return msg + ' Your invitation is still valid: retry when you are back online.';
  return msg;
}

start().catch((e) => {
  replace(main, h('h1', null, 'Something went wrong'), h('p', { class: 'alert', role: 'alert' }, String(e && e.message || e)));
});
