// What /admin and /docs share: the token kept for this tab, requests to the
// API, and building elements whose text is always set as text (never as
// HTML), so nothing an article contains can become markup.
'use strict';

const api = (() => {
  // sessionStorage lives as long as the tab: the token never goes into a
  // URL, a cookie or a request other than as an Authorization header.
  const TOKEN_KEY = 'articles.token';

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lasts until reload */ }
  }

  // A random key for Idempotency-Key. crypto.getRandomValues works on plain
  // http:// origins too, where randomUUID does not.
  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // Sends a request; resolves to {status, headers, body, text} whatever the
  // status (body is parsed JSON when the response is JSON); status 0 when no
  // answer came back.
  async function request(method, path, options = {}) {
    const headers = new Headers(options.headers || {});
    const bearer = options.token === undefined ? token() : options.token;
    if (bearer) headers.set('Authorization', 'Bearer ' + bearer);
    const init = { method, headers, cache: 'no-store' };
    if (options.body !== undefined) {
      headers.set('Content-Type', 'application/json');
      init.body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    }
    let response;
    let text;
    try {
      response = await fetch(path, init);
      text = await response.text();
    } catch (error) {
      // No answer (the server is down, the network failed): status 0,
      // with a problem that says so, like any other error.
      const detail = 'Could not reach the server (' + error.message + ')';
      return { status: 0, headers: new Headers(), body: { detail }, text: '' };
    }
    let body = null;
    if (/json/.test(response.headers.get('Content-Type') || '') && text) {
      try { body = JSON.parse(text); } catch (_) { body = null; }
    }
    return { status: response.status, headers: response.headers, body, text };
  }

  // el('p', {class: 'meta'}, 'by ', name): an element with attributes and
  // children; strings become text nodes.
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
    }
    return node;
  }

  // A problem+json answer as one sentence.
  function describe(response) {
    const problem = response.body || {};
    return problem.detail || problem.title || ('HTTP ' + response.status);
  }

  return { token, setToken, randomKey, request, el, describe };
})();
