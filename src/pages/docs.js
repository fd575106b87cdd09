// /docs: the API's documentation, built in the browser from /openapi.json,
// and a console that sends real requests. Every string from the document is
// inserted as text.
'use strict';

(() => {
  const { el, request } = api;
  const $ = (id) => document.getElementById(id);
  const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];
  let doc = null;

  // Follows a local $ref ("#/components/schemas/Article") to what it names.
  function deref(node) {
    let seen = 0;
    while (node && typeof node.$ref === 'string' && node.$ref.startsWith('#/') && seen < 20) {
      node = node.$ref.slice(2).split('/')
        .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((at, part) => (at ? at[part] : undefined), doc);
      seen += 1;
    }
    return node || {};
  }

  function refName(node) {
    return node && typeof node.$ref === 'string' ? node.$ref.split('/').pop() : null;
  }

  // A short description of a schema: its type and constraints.
  function schemaSummary(schema) {
    const name = refName(schema);
    if (name) return name;
    schema = deref(schema);
    if (schema.oneOf || schema.anyOf) {
      return (schema.oneOf || schema.anyOf).map(schemaSummary).join(' | ');
    }
    let text = Array.isArray(schema.type) ? schema.type.join(' | ') : (schema.type || 'any');
    if (schema.type === 'array' && schema.items) text = 'array of ' + schemaSummary(schema.items);
    const limits = [];
    for (const key of ['minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'pattern', 'format']) {
      if (schema[key] !== undefined) limits.push(key + ' ' + schema[key]);
    }
    if (schema.enum) limits.push('one of ' + schema.enum.join(', '));
    if (schema.default !== undefined) limits.push('default ' + JSON.stringify(schema.default));
    return limits.length ? text + ' (' + limits.join('; ') + ')' : text;
  }

  // An example for a media type: the document's own, else one made from
  // the schema.
  function exampleOf(media) {
    if (!media) return undefined;
    if (media.example !== undefined) return media.example;
    if (media.examples) {
      const first = Object.values(media.examples)[0];
      if (first) return deref(first).value;
    }
    return sample(media.schema, 0);
  }

  function sample(schema, depth) {
    schema = deref(schema);
    if (depth > 6) return null;
    if (schema.examples && schema.examples.length) return schema.examples[0];
    if (schema.example !== undefined) return schema.example;
    if (schema.default !== undefined) return schema.default;
    if (schema.enum) return schema.enum[0];
    if (schema.oneOf || schema.anyOf) return sample((schema.oneOf || schema.anyOf)[0], depth + 1);
    if (schema.allOf) return Object.assign({}, ...schema.allOf.map((part) => sample(part, depth + 1)));
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
    switch (type) {
      case 'object': {
        const out = {};
        for (const [name, property] of Object.entries(schema.properties || {})) {
          out[name] = sample(property, depth + 1);
        }
        return out;
      }
      case 'array': return schema.items ? [sample(schema.items, depth + 1)] : [];
      case 'integer': return schema.minimum !== undefined ? schema.minimum : 1;
      case 'number': return 1.5;
      case 'boolean': return true;
      case 'string': return 'string';
      default: return null;
    }
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  // ---- the operations ---------------------------------------------------

  function renderOperation(path, method, operation, shared) {
    const parameters = [...(shared || []), ...(operation.parameters || [])].map(deref);
    const id = 'op-' + method + '-' + path.replace(/[^A-Za-z0-9]+/g, '-');
    const section = el('details', { class: 'operation' },
      el('summary', { id },
        el('span', { class: 'method' }, method.toUpperCase()), ' ',
        el('code', {}, path), ' ',
        el('span', { class: 'meta' }, operation.summary || '')));
    if (operation.description) section.append(el('p', {}, operation.description));
    if (operation.security) {
      const open = operation.security.some((need) => Object.keys(need).length === 0);
      section.append(el('p', { class: 'meta' },
        open ? 'A bearer token is optional (required for writes in auth mode required).'
             : 'Needs a bearer token.'));
    }
    if (parameters.length) {
      section.append(el('h3', {}, 'Parameters'), el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'), el('th', {}, 'schema'), el('th', {}, 'description'))),
        el('tbody', {}, parameters.map((p) => el('tr', {},
          el('td', {}, el('code', {}, p.name), p.required ? ' (required)' : ''),
          el('td', {}, p.in),
          el('td', {}, schemaSummary(p.schema || {})),
          el('td', {}, p.description || ''))))));
    }
    const body = deref(operation.requestBody);
    let bodyExample;
    if (body.content) {
      section.append(el('h3', {}, 'Request body' + (body.required ? ' (required)' : '')));
      if (body.description) section.append(el('p', {}, body.description));
      for (const [type, media] of Object.entries(body.content)) {
        bodyExample = bodyExample === undefined ? exampleOf(media) : bodyExample;
        section.append(el('p', {}, el('code', {}, type), ': ', schemaSummary(media.schema || {})),
          el('pre', { 'aria-label': 'Example request body' }, pretty(exampleOf(media))));
      }
    }
    section.append(el('h3', {}, 'Responses'));
    for (const [status, response] of Object.entries(operation.responses || {})) {
      const r = deref(response);
      const item = el('div', {}, el('p', {}, el('strong', {}, status), ' ', r.description || ''));
      const headers = Object.entries(r.headers || {});
      if (headers.length) {
        item.append(el('p', { class: 'meta' }, 'Headers: ',
          headers.map(([name, header], i) => [i ? ', ' : '', el('code', {}, name),
            deref(header).description ? ' (' + deref(header).description + ')' : ''])));
      }
      for (const [type, media] of Object.entries(r.content || {})) {
        item.append(el('p', {}, el('code', {}, type), ': ', schemaSummary(media.schema || {})));
        const example = exampleOf(media);
        if (example !== undefined && example !== null) {
          item.append(el('pre', { 'aria-label': 'Example ' + status + ' response' },
            typeof example === 'string' ? example : pretty(example)));
        }
      }
      section.append(item);
    }
    section.append(el('button', {
      type: 'button',
      'aria-describedby': id,
      onclick: () => tryOut(method, path, parameters, bodyExample),
    }, 'Try'));
    return section;
  }

  // Fills the console with an operation: path parameters get their
  // example (or 1), the body the request example.
  function tryOut(method, path, parameters, bodyExample) {
    let filled = path;
    for (const p of parameters.filter((p) => p.in === 'path')) {
      const value = p.example !== undefined ? p.example : sample(p.schema || {}, 0);
      filled = filled.replace('{' + p.name + '}', encodeURIComponent(String(value)));
    }
    $('method').value = method.toUpperCase();
    $('path').value = filled;
    $('body').value = bodyExample === undefined ? '' : pretty(bodyExample);
    $('path').focus();
  }

  function renderSchemas() {
    const schemas = (doc.components && doc.components.schemas) || {};
    $('schemas').replaceChildren(...Object.entries(schemas).map(([name, schema]) =>
      el('details', { class: 'operation', id: 'schema-' + name },
        el('summary', {}, el('code', {}, name), ' ', el('span', { class: 'meta' }, schema.description || '')),
        el('pre', {}, pretty(schema)))));
  }

  function render() {
    const info = doc.info || {};
    $('intro').textContent = (info.title || '') + ' ' + (info.version || '') + ': ' + (info.description || '');
    const sections = [];
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        if (item[method]) sections.push(renderOperation(path, method, item[method], item.parameters));
      }
    }
    $('operations').replaceChildren(...sections);
    renderSchemas();
  }

  // ---- the console ------------------------------------------------------

  function extraHeaders() {
    const headers = {};
    for (const line of $('headers').value.split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf(':');
      if (at < 1) throw new Error('“' + line.trim() + '” is not “Name: value”.');
      headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return headers;
  }

  $('console').addEventListener('submit', async (event) => {
    event.preventDefault();
    const path = $('path').value.trim();
    $('path-error').textContent = '';
    $('headers-error').textContent = '';
    $('path').removeAttribute('aria-invalid');
    // Only this server's paths: the console never calls another host.
    let target = null;
    try { target = new URL(path, location.href); } catch (_) { target = null; }
    if (!path.startsWith('/') || !target || target.origin !== location.origin) {
      $('path-error').textContent = 'A path on this server, starting with one /.';
      $('path').setAttribute('aria-invalid', 'true');
      $('path').focus();
      return;
    }
    let headers;
    try { headers = extraHeaders(); } catch (error) {
      $('headers-error').textContent = error.message;
      $('headers').focus();
      return;
    }
    const method = $('method').value;
    const body = $('body').value.trim();
    const send = $('send');
    send.disabled = true;
    $('result-status').textContent = 'Sending…';
    const started = performance.now();
    try {
      const response = await request(method, path, {
        headers,
        token: $('token').value.trim(),
        body: body && !['GET', 'HEAD'].includes(method) ? body : undefined,
      });
      const ms = Math.round(performance.now() - started);
      if (response.status === 0) throw new Error(response.body.detail);
      $('result-status').textContent = response.status + ' (' + ms + ' ms)';
      const lines = [];
      response.headers.forEach((value, name) => lines.push(name + ': ' + value));
      $('result-headers').textContent = lines.join('\n');
      $('result-headers').hidden = false;
      $('result-body').textContent = response.body !== null ? pretty(response.body) : response.text;
      $('result-body').hidden = !response.text;
    } catch (error) {
      $('result-status').textContent = 'No answer: ' + error.message;
      $('result-headers').hidden = true;
      $('result-body').hidden = true;
    } finally {
      send.disabled = false;
    }
  });

  // ---- start ------------------------------------------------------------

  $('token').value = api.token();
  request('GET', '/openapi.json').then((response) => {
    if (response.status !== 200 || !response.body) {
      $('load-error').textContent = 'Could not load /openapi.json: HTTP ' + response.status;
      return;
    }
    doc = response.body;
    render();
  }, (error) => { $('load-error').textContent = 'Could not load /openapi.json: ' + error.message; });
})();
