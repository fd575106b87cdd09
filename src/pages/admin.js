// /admin: list, search, open, create, edit and delete articles, following
// /events so that changes made elsewhere show without a reload.
//
// Three views share the page: the list, one article, and the editor. The
// address's fragment names the view (#/articles/7, #/articles/7/edit,
// #/new; anything else is the list), so Back and bookmarks work.
'use strict';

(() => {
  const { el, request, describe } = api;
  const $ = (id) => document.getElementById(id);
  const PER_PAGE = 20;

  const state = {
    list: { q: '', tag: '', author: '', sort: '-created_at', page: 1 },
    total: 0,
    article: null, // the article open in the view or the editor
    etag: null, // its ETag, sent as If-Match by Delete
    editTag: null, // the ETag of the version the editor was filled from, sent by Save
    creating: false,
    idempotencyKey: null, // one per new-article form: a double click creates one
    ownWrite: null, // {id, updated_at} of our last save, not news to us
    seq: null, // the change feed position the page has caught up to
  };

  // Messages: role="status" for what went well, role="alert" for errors.
  function say(text) { $('alert').textContent = ''; $('status').textContent = text; }
  function warn(text) { $('status').textContent = ''; $('alert').textContent = text; }
  function quiet() { $('status').textContent = ''; $('alert').textContent = ''; }

  // ---- signing in -------------------------------------------------------

  async function showWho() {
    const token = api.token();
    $('signin').hidden = Boolean(token);
    $('who').hidden = !token;
    if (!token) return;
    const me = await request('GET', '/me');
    if (me.status === 200) {
      $('who-name').textContent = 'Signed in as ' + me.body.username;
    } else {
      api.setToken('');
      $('signin').hidden = false;
      $('who').hidden = true;
      warn('Your token is no longer valid: ' + describe(me) + '. Sign in again.');
    }
  }

  $('signin').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    setFieldError(input, $('token-error'), '');
    if (!token) {
      setFieldError(input, $('token-error'), 'Paste a token first.');
      input.focus();
      return;
    }
    const me = await request('GET', '/me', { token });
    if (me.status !== 200) {
      setFieldError(input, $('token-error'), 'This token is not valid.');
      warn('Sign-in failed: ' + describe(me));
      input.focus();
      return;
    }
    api.setToken(token);
    input.value = '';
    await showWho();
    say('Signed in as ' + me.body.username + '.');
    $('signout').focus();
  });

  $('signout').addEventListener('click', () => {
    api.setToken('');
    showWho();
    say('Signed out.');
    $('token').focus();
  });

  // ---- the list ---------------------------------------------------------

  function listQuery() {
    const params = new URLSearchParams();
    const list = state.list;
    for (const name of ['q', 'tag', 'author']) if (list[name]) params.set(name, list[name]);
    params.set('sort', list.sort);
    params.set('page', String(list.page));
    params.set('per_page', String(PER_PAGE));
    return params.toString();
  }

  let listing = null; // the list request in flight, if any
  let listAgain = false; // a change came while it was in flight

  async function loadList() {
    if (listing) { listAgain = true; return listing; }
    listing = (async () => {
      do {
        listAgain = false;
        const response = await request('GET', '/articles?' + listQuery());
        if (response.status !== 200) { warn('Could not load the articles: ' + describe(response)); break; }
        state.total = Number(response.headers.get('X-Total-Count') || 0);
        const pages = Math.max(1, Math.ceil(state.total / PER_PAGE));
        if (state.list.page > pages) { state.list.page = pages; listAgain = true; continue; }
        renderList(response.body, pages);
        follow(response.headers.get('Events-Seq'));
      } while (listAgain);
    })();
    try { await listing; } finally { listing = null; }
  }

  function renderList(articles, pages) {
    const items = articles.map((article) => el('li', {},
      el('a', { href: '#/articles/' + article.id }, article.title),
      el('div', { class: 'meta' }, byline(article)),
      tagList(article.tags)));
    $('items').replaceChildren(...items);
    const n = state.total;
    $('total').textContent = n === 1 ? '1 article' : n + ' articles';
    $('page').textContent = 'Page ' + state.list.page + ' of ' + pages;
    $('prev').disabled = state.list.page <= 1;
    $('next').disabled = state.list.page >= pages;
  }

  function byline(article) {
    const who = article.author ? article.author.username : 'anonymous';
    const when = new Date(article.created_at).toLocaleString();
    const edited = article.updated_at !== article.created_at
      ? ' · edited ' + new Date(article.updated_at).toLocaleString() : '';
    return 'by ' + who + ' · ' + when + edited;
  }

  function tagList(tags) {
    if (!tags.length) return null;
    return el('div', { role: 'group', 'aria-label': 'Tags' }, tags.map((tag) => el('span', { class: 'tag' }, tag)));
  }

  let typing = null;
  function filtersChanged(now) {
    clearTimeout(typing);
    const apply = () => {
      state.list = {
        q: $('q').value.trim(),
        tag: $('tag').value.trim(),
        author: $('author').value.trim(),
        sort: $('sort').value,
        page: 1,
      };
      loadList();
    };
    if (now) apply(); else typing = setTimeout(apply, 250);
  }
  for (const id of ['q', 'tag', 'author']) $(id).addEventListener('input', () => filtersChanged(false));
  $('sort').addEventListener('change', () => filtersChanged(true));
  $('filters').addEventListener('submit', (event) => { event.preventDefault(); filtersChanged(true); });
  $('prev').addEventListener('click', () => { state.list.page -= 1; loadList(); });
  $('next').addEventListener('click', () => { state.list.page += 1; loadList(); });

  // ---- one article ------------------------------------------------------

  // Where the page is: each navigation moves it on, so an answer that
  // comes back after the user moved on is dropped, not shown.
  let navigation = 0;
  let loading = null; // {id, changed}: an article being fetched
  async function fetchArticle(id) {
    const at = navigation;
    loading = { id, changed: false };
    const response = await request('GET', '/articles/' + id);
    const changed = loading && loading.changed;
    loading = null;
    if (at !== navigation) return false;
    // A change to it landed while the answer was on its way: ask again.
    if (changed) return fetchArticle(id);
    if (response.status === 200) {
      state.article = response.body;
      state.etag = response.headers.get('ETag');
      return true;
    }
    state.article = null;
    warn(response.status === 404 ? 'This article does not exist (any more).' : describe(response));
    return false;
  }

  function renderArticle() {
    const article = state.article;
    $('article-title').textContent = article.title;
    $('article-meta').textContent = byline(article);
    $('article-tags').replaceChildren(...(article.tags.length ? [tagList(article.tags)] : []));
    $('article-content').textContent = article.content;
    $('edit').disabled = false;
    $('delete').disabled = false;
  }

  $('delete').addEventListener('click', () => {
    $('confirm-text').textContent = 'Delete “' + state.article.title + '”? This cannot be undone.';
    $('confirm-delete').hidden = false;
    $('confirm').focus();
  });
  $('cancel-delete').addEventListener('click', () => {
    $('confirm-delete').hidden = true;
    $('delete').focus();
  });
  $('confirm').addEventListener('click', async () => {
    const article = state.article;
    $('confirm').disabled = true;
    const response = await request('DELETE', '/articles/' + article.id, {
      headers: { 'If-Match': state.etag },
    });
    $('confirm').disabled = false;
    $('confirm-delete').hidden = true;
    if (response.status === 204) {
      go('#/', 'Deleted “' + article.title + '”.');
    } else if (response.status === 412) {
      warn('Someone else changed this article meanwhile; it was not deleted. Look at it again first.');
      if (await fetchArticle(article.id)) renderArticle();
    } else {
      warn(writeError(response));
    }
  });
  $('edit').addEventListener('click', () => go('#/articles/' + state.article.id + '/edit'));
  $('back').addEventListener('click', (event) => { event.preventDefault(); go('#/'); });

  // ---- the editor -------------------------------------------------------

  const fields = ['title', 'content', 'tags'];

  function setFieldError(input, box, message) {
    box.textContent = message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function clearFieldErrors() {
    for (const name of fields) setFieldError($(name), $(name + '-error'), '');
  }

  function fillEditor(article) {
    $('title').value = article ? article.title : '';
    $('content').value = article ? article.content : '';
    $('tags').value = article ? article.tags.join(', ') : '';
    clearFieldErrors();
    $('reload').hidden = true;
  }

  function openEditor(article) {
    state.creating = !article;
    state.editTag = article ? state.etag : null;
    state.idempotencyKey = article ? null : api.randomKey();
    $('editor-heading').textContent = article ? 'Edit “' + article.title + '”' : 'New article';
    fillEditor(article);
    $('save').disabled = false;
    $('title').focus();
  }

  function editorBody() {
    const tags = $('tags').value.split(',').map((tag) => tag.trim()).filter((tag) => tag);
    return { title: $('title').value, content: $('content').value, tags };
  }

  // The sentence for a failed write that is not about one field.
  function writeError(response) {
    switch (response.status) {
      case 401: return 'A token is needed to write: paste one under Token and sign in. (' + describe(response) + ')';
      case 403: return 'Only its author may change this article.';
      case 404: return 'This article does not exist (any more).';
      default: return 'Not saved: ' + describe(response);
    }
  }

  function showFieldErrors(problem) {
    let first = null;
    for (const error of problem.errors || []) {
      const name = String(error.field).split(/[.[]/)[0];
      if (!fields.includes(name)) continue;
      const box = $(name + '-error');
      const text = error.field === name ? error.message : error.field + ': ' + error.message;
      setFieldError($(name), box, box.textContent ? box.textContent + '; ' + text : text);
      first = first || $(name);
    }
    if (first) first.focus();
  }

  $('article-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const save = $('save');
    if (save.disabled) return;
    save.disabled = true;
    clearFieldErrors();
    quiet();
    try {
      if (state.creating) await create(); else await update();
    } finally {
      save.disabled = false;
    }
  });

  async function create() {
    const body = editorBody();
    let response;
    // 409: the first request with this key is still being served; its
    // answer is replayed once it is done.
    for (let attempt = 0; attempt < 20; attempt += 1) {
      response = await request('POST', '/articles', {
        body, headers: { 'Idempotency-Key': state.idempotencyKey },
      });
      if (response.status !== 409) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (response.status === 201) {
      state.ownWrite = { id: response.body.id, updated_at: response.body.updated_at };
      state.idempotencyKey = null;
      go('#/articles/' + response.body.id, 'Created “' + response.body.title + '”.');
    } else if (response.status === 422 && response.body && response.body.errors) {
      warn('Not saved: ' + describe(response) + '. See the fields marked below.');
      showFieldErrors(response.body);
    } else {
      warn(writeError(response));
    }
  }

  async function update() {
    const article = state.article;
    const response = await request('PUT', '/articles/' + article.id, {
      body: editorBody(), headers: { 'If-Match': state.editTag },
    });
    if (response.status === 200) {
      state.ownWrite = { id: response.body.id, updated_at: response.body.updated_at };
      state.article = response.body;
      state.etag = response.headers.get('ETag');
      state.editTag = state.etag;
      go('#/articles/' + article.id, 'Saved “' + response.body.title + '”.');
    } else if (response.status === 412) {
      warn('Someone else changed this article since you opened it, so your edit was not saved. ' +
        'Reload to get their version (copy your text first if you want to keep it).');
      $('reload').hidden = false;
      $('reload').focus();
    } else if (response.status === 422 && response.body && response.body.errors) {
      warn('Not saved: ' + describe(response) + '. See the fields marked below.');
      showFieldErrors(response.body);
    } else {
      warn(writeError(response));
    }
  }

  $('reload').addEventListener('click', async () => {
    if (!(await fetchArticle(state.article.id))) return;
    state.editTag = state.etag;
    fillEditor(state.article);
    say('Reloaded the current version.');
    $('title').focus();
  });

  $('cancel-edit').addEventListener('click', () => {
    go(state.creating ? '#/' : '#/articles/' + state.article.id);
  });
  $('new').addEventListener('click', () => go('#/new'));

  // ---- views ------------------------------------------------------------

  function show(view) {
    for (const id of ['list-view', 'article-view', 'editor']) $(id).hidden = id !== view;
    $('confirm-delete').hidden = true;
  }

  async function route() {
    navigation += 1;
    const at = navigation;
    quiet();
    await open(location.hash, at);
    if (at !== navigation) return;
    if (notice) { say(notice); notice = null; }
  }

  async function open(hash, at) {
    let match;
    if ((match = /^#\/articles\/(\d+)\/edit$/.exec(hash))) {
      const id = Number(match[1]);
      if (!state.article || state.article.id !== id || !state.etag) {
        if (!(await fetchArticle(id))) { if (at === navigation) show('list-view'); return; }
      }
      show('editor');
      openEditor(state.article);
    } else if ((match = /^#\/articles\/(\d+)$/.exec(hash))) {
      if (!(await fetchArticle(Number(match[1])))) {
        if (at === navigation) { show('list-view'); loadList(); }
        return;
      }
      show('article-view');
      renderArticle();
      $('article-title').focus();
    } else if (hash === '#/new') {
      show('editor');
      openEditor(null);
    } else {
      show('list-view');
      await loadList();
      $('list-heading').focus();
    }
  }

  // Opens a view, then says `message` there (a message said before the
  // navigation would be cleared by it).
  let notice = null;
  function go(hash, message) {
    notice = message || null;
    if (location.hash === hash) route(); else location.hash = hash;
  }

  window.addEventListener('hashchange', route);

  // ---- live updates -----------------------------------------------------

  let source = null;
  let refresh = null;

  // Opens the change feed once, after the first listing: from its
  // Events-Seq, so nothing between the snapshot and the stream is missed.
  function follow(seq) {
    if (source || seq === null) return;
    state.seq = seq;
    connect();
    // An article opened before the feed began may have changed in between.
    reloadOpenArticle();
  }

  function connect() {
    source = new EventSource('/events?after=' + encodeURIComponent(state.seq));
    for (const type of ['article.created', 'article.updated', 'article.deleted']) {
      source.addEventListener(type, (message) => {
        state.seq = message.lastEventId || state.seq;
        changed(JSON.parse(message.data));
      });
    }
    source.addEventListener('reset', (message) => {
      state.seq = message.lastEventId || state.seq;
      refreshList();
      reloadOpenArticle();
    });
    source.onerror = () => {
      // The browser reconnects by itself (with Last-Event-ID) unless the
      // server refused the stream (a 503 when too many are open): then try
      // again later from the last position seen.
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(() => { if (!source) connect(); }, 5000);
      }
    };
  }

  function changed(event) {
    if (loading && loading.id === event.data.id) loading.changed = true;
    refreshList();
    const article = state.article;
    if (!article || article.id !== event.data.id) return;
    const own = state.ownWrite && state.ownWrite.id === event.data.id &&
      state.ownWrite.updated_at === event.data.updated_at;
    if (own) return;
    if (!$('article-view').hidden) {
      if (event.type === 'article.deleted') {
        warn('This article was just deleted elsewhere.');
        $('edit').disabled = true;
        $('delete').disabled = true;
      } else {
        reloadOpenArticle().then(() => say('This article was just changed elsewhere; you see the new version.'));
      }
    } else if (!$('editor').hidden && !state.creating && $('reload').hidden) {
      // (With Reload showing, a refused Save has said so already.)
      warn(event.type === 'article.deleted'
        ? 'This article was just deleted elsewhere.'
        : 'Someone else just changed this article: saving now will be refused. Reload to get their version.');
      $('reload').hidden = event.type === 'article.deleted';
    }
  }

  // Several changes in a burst cost one listing.
  function refreshList() {
    if ($('list-view').hidden) return;
    clearTimeout(refresh);
    refresh = setTimeout(loadList, 100);
  }

  async function reloadOpenArticle() {
    if (!state.article || $('article-view').hidden) return;
    if (await fetchArticle(state.article.id)) renderArticle();
  }

  // ---- start ------------------------------------------------------------

  showWho();
  route().then(() => { if ($('list-view').hidden) loadList(); });
})();
