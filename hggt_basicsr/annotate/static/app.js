'use strict';
// The annotate page: pick a name, label each version of a group Positive / Similar / Negative against the original,
// submit, get the next group. Keys: 1 2 3 label, arrows move, Enter submits, F flicker, Space toggle, Z 1:1, 0 fit,
// B back. Unsubmitted clicks survive a reload (kept per annotator and group in localStorage until submitted).

(() => {
  const { params, withToken, api, el, SyncView } = HGGT;
  const LABELS = ['Positive', 'Similar', 'Negative'];
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const $ = (id) => document.getElementById(id);

  const view = new SyncView();
  const state = {
    name: null,
    group: null, // the API's group view
    labels: {}, // version -> label (what is clicked now)
    selected: 0, // index into group.versions
    mode: 'grid', // or 'flicker'
    showOriginal: false, // flicker view: original on top
    shownAt: 0,
    busy: false,
    prefetched: [],
    autoTimer: null,
  };
  window.hggtState = state; // read by the browser tests
  window.hggtView = view;

  const enc = encodeURIComponent;
  const draftKey = (stem) => `hggt-draft:${state.name}:${stem}`;

  function show(section) {
    for (const id of ['picker', 'work', 'finished', 'failure']) $(id).hidden = id !== section;
  }

  function message(text, kind = '') {
    const m = $('message');
    m.textContent = text;
    m.className = kind;
  }

  function fail(err) {
    if (err.status === 401 || err.status === 403 || err.status === 409) {
      $('failure-text').textContent = err.message;
      show('failure');
    } else {
      message(err.message, 'error');
    }
  }

  // ------------------------------------------------------------------------------------------ start
  async function start() {
    let config;
    try {
      config = await api('/api/config');
    } catch (err) {
      fail(err);
      return;
    }
    state.config = config;
    const name = config.annotator || params.get('annotator');
    if (name) {
      begin(name);
      return;
    }
    show('picker');
    try {
      const known = await api('/api/annotators');
      for (const n of known.annotators) $('picker-known').append(el('option', { value: n }));
    } catch (err) {
      /* the picker works without the list */
    }
    $('picker-name').focus();
  }

  $('picker-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('picker-name').value.trim();
    if (!NAME_RE.test(name)) {
      $('picker-name').setCustomValidity('1..64 letters, digits, - or _');
      $('picker-name').reportValidity();
      return;
    }
    const url = new URL(location.href);
    url.searchParams.set('annotator', name);
    url.searchParams.delete('token');
    history.replaceState(null, '', url);
    begin(name);
  });
  $('picker-name').addEventListener('input', () => $('picker-name').setCustomValidity(''));

  async function begin(name) {
    if (!NAME_RE.test(name)) {
      $('failure-text').textContent = `annotator name ${JSON.stringify(name)}: expected 1..64 letters, digits, - or _`;
      show('failure');
      return;
    }
    state.name = name;
    $('who').textContent = name;
    document.title = `HGGT annotate - ${name}`;
    await loadNext();
  }

  async function loadNext() {
    try {
      display(await api(`/api/annotators/${enc(state.name)}/next`));
    } catch (err) {
      fail(err);
    }
  }

  async function loadGroup(stem) {
    try {
      display(await api(`/api/annotators/${enc(state.name)}/groups/${enc(stem)}`));
    } catch (err) {
      fail(err);
    }
  }

  // ------------------------------------------------------------------------------------------ display
  function progressText(p) {
    const mean = p.mean_seconds === null ? '' : ` \u00b7 ${Math.round(p.mean_seconds)} s per group`;
    const skipped = p.skipped ? ` \u00b7 ${p.skipped} skipped` : '';
    return `${p.done} / ${p.total} done${mean}${skipped}`;
  }

  function display(group) {
    state.group = group;
    $('progress').textContent = progressText(group.progress);
    $('btn-back').disabled = !group.prev;
    if (group.finished) {
      stopAuto();
      $('finished-text').textContent =
        `All ${group.progress.total} groups assigned to ${group.annotator} are labelled` +
        (group.progress.skipped ? ` (${group.progress.skipped} skipped: broken images or unreadable label files)` : '') +
        '. Thank you! You can still go back and revise a group.';
      $('btn-finished-back').disabled = !group.prev;
      $('btn-forward').disabled = true;
      show('finished');
      return;
    }
    $('btn-forward').disabled = !(group.after || group.labels);
    $('group-name').textContent = `group ${group.stem}`;
    $('revision').hidden = !group.labels;
    let draft = null;
    try {
      draft = JSON.parse(localStorage.getItem(draftKey(group.stem)) || 'null');
    } catch (err) {
      draft = null;
    }
    state.labels = Object.assign({}, group.labels || {}, draft || {});
    const first = group.versions.findIndex((v) => !state.labels[v.version]);
    state.selected = first >= 0 ? first : 0;
    buildBoard(group);
    buildFlicker(group);
    view.reset();
    layout();
    render();
    message(group.labels ? 'Saved labels shown: change what you like and submit again.' : '');
    state.shownAt = performance.now();
    state.prefetched = group.prefetch.map((url) => {
      const img = new Image();
      img.src = withToken(url);
      return img;
    });
    show('work');
  }

  function image(url, alt) {
    return el('img', { src: withToken(url), alt, draggable: 'false' });
  }

  function labelButtons(index) {
    return LABELS.map((label, k) =>
      el('button', {
        type: 'button',
        class: `lab lab-${label}`,
        title: `${label} (key ${k + 1})`,
        dataset: { label },
        onclick: (event) => {
          event.currentTarget.blur();
          setLabel(index, label);
        },
      }, el('span', { class: 'key', text: String(k + 1) }), ` ${label}`));
  }

  function buildBoard(group) {
    const board = $('board');
    board.replaceChildren();
    const K = group.versions.length;
    const cols = K <= 2 ? K : Math.ceil(K / 2);
    state.cols = cols;
    state.rows = Math.ceil(K / cols);
    board.style.gridTemplateColumns = `repeat(${cols + 1}, var(--panel))`;
    const original = el('div', { class: 'card original', id: 'card-original' },
      el('div', { class: 'panel', dataset: { version: 'original' } }, image(group.original, 'original')),
      el('div', { class: 'caption' }, el('strong', { text: 'Original' }), el('span', { class: 'hint', text: 'reference' })),
      el('p', { class: 'hint legend' }, 'Is each version better (Positive), about the same (Similar) or worse ' +
        '(Negative) than this original? Judge sharpness, noise, details and artifacts, not the content.'));
    original.style.gridColumn = '1';
    original.style.gridRow = `1 / span ${state.rows}`;
    board.append(original);
    group.versions.forEach((v, i) => {
      const card = el('div', { class: 'card version', dataset: { version: v.version, slot: String(i + 1) } },
        el('div', { class: 'panel', dataset: { version: v.version } }, image(v.url, `version ${i + 1}`)),
        el('div', { class: 'caption' }, el('strong', { text: `Version ${i + 1}` }), el('span', { class: 'chosen' })),
        el('div', { class: 'labels' }, ...labelButtons(i)));
      card.style.gridColumn = String(2 + (i % cols));
      card.style.gridRow = String(1 + Math.floor(i / cols));
      card.addEventListener('pointerdown', () => select(i));
      board.append(card);
    });
  }

  function buildFlicker(group) {
    const panel = $('flicker-panel');
    panel.replaceChildren(image(group.original, 'original'), image(group.versions[0].url, 'version'));
    panel.children[0].classList.add('flick-original');
    panel.children[1].classList.add('flick-version');
    $('flicker-versions').replaceChildren(...group.versions.map((v, i) =>
      el('button', { type: 'button', class: 'chip', dataset: { slot: String(i + 1) }, text: `Version ${i + 1}`,
        onclick: (event) => { event.currentTarget.blur(); select(i); } })));
    $('flicker-labels').replaceChildren(...labelButtons(-1));
  }

  function panels() {
    return state.mode === 'flicker'
      ? [$('flicker-panel')]
      : Array.from($('board').querySelectorAll('.panel'));
  }

  function layout() {
    if (!state.group || state.group.finished) return;
    const gap = 12;
    const cols = state.cols + 1;
    const availW = window.innerWidth - 40 - gap * state.cols;
    const availH = window.innerHeight - 185 - state.rows * 78; // header, status, actions, keys; captions and buttons
    const size = Math.max(120, Math.floor(Math.min(availW / cols, availH / state.rows)));
    $('board').style.setProperty('--panel', `${size}px`);
    const big = Math.max(200, Math.floor(Math.min(window.innerWidth - 60, window.innerHeight - 250)));
    $('flicker').style.setProperty('--big', `${big}px`);
    view.setPanels(panels());
  }
  window.addEventListener('resize', layout);

  // ------------------------------------------------------------------------------------------ labelling
  function render() {
    const group = state.group;
    const cards = $('board').querySelectorAll('.card.version');
    group.versions.forEach((v, i) => {
      const card = cards[i];
      const label = state.labels[v.version] || '';
      card.dataset.label = label;
      card.querySelector('.chosen').textContent = label;
      card.classList.toggle('selected', i === state.selected);
      for (const b of card.querySelectorAll('button.lab')) b.setAttribute('aria-pressed', String(b.dataset.label === label));
    });
    const current = group.versions[state.selected];
    const chips = $('flicker-versions').children;
    group.versions.forEach((v, i) => {
      chips[i].classList.toggle('selected', i === state.selected);
      chips[i].dataset.label = state.labels[v.version] || '';
    });
    for (const b of $('flicker-labels').children) {
      b.setAttribute('aria-pressed', String(b.dataset.label === state.labels[current.version]));
    }
    const flickVersion = $('flicker-panel').querySelector('.flick-version');
    if (flickVersion.dataset.version !== current.version) {
      flickVersion.src = withToken(current.url);
      flickVersion.dataset.version = current.version;
    }
    $('flicker-panel').classList.toggle('show-original', state.showOriginal);
    $('flicker-what').textContent = state.showOriginal ? 'Original' : `Version ${state.selected + 1}`;
    const n = group.versions.filter((v) => state.labels[v.version]).length;
    $('count').textContent = `${n} / ${group.versions.length} versions labelled`;
    $('btn-submit').disabled = n !== group.versions.length || state.busy;
  }

  function select(i) {
    const K = state.group.versions.length;
    state.selected = Math.max(0, Math.min(K - 1, i));
    render();
  }

  function setLabel(index, label) {
    const group = state.group;
    const i = index < 0 ? state.selected : index;
    state.labels[group.versions[i].version] = label;
    localStorage.setItem(draftKey(group.stem), JSON.stringify(state.labels));
    // move on to the next version still without a label (after this one, then from the start)
    const K = group.versions.length;
    let next = i;
    for (let step = 1; step <= K; step++) {
      const j = (i + step) % K;
      if (!state.labels[group.versions[j].version]) {
        next = j;
        break;
      }
    }
    state.selected = next;
    render();
    if (state.mode === 'flicker') {
      state.showOriginal = false;
      render();
    }
  }

  async function submit() {
    const group = state.group;
    if (!group || group.finished || state.busy) return;
    const missing = group.versions.findIndex((v) => !state.labels[v.version]);
    if (missing >= 0) {
      message(`Label every version first: version ${missing + 1} has no label.`, 'error');
      select(missing);
      return;
    }
    state.busy = true;
    render();
    const labels = {};
    for (const v of group.versions) labels[v.version] = state.labels[v.version];
    try {
      const seconds = (performance.now() - state.shownAt) / 1000;
      const result = await api(`/api/annotators/${enc(state.name)}/groups/${enc(group.stem)}/labels`, {
        method: 'POST',
        body: { labels, seconds },
      });
      localStorage.removeItem(draftKey(group.stem));
      state.busy = false;
      await loadNext();
      message(`Saved ${group.stem} (${result.time_cost.Total} s${result.revision ? ', revised' : ''}).`, 'ok');
    } catch (err) {
      state.busy = false;
      render();
      fail(err);
    }
  }

  function back() {
    const group = state.group;
    if (group && group.prev) loadGroup(group.prev);
  }

  function forward() {
    const group = state.group;
    if (!group || group.finished) return;
    if (group.after) loadGroup(group.after);
    else if (group.labels) loadNext();
  }

  function setMode(mode) {
    state.mode = mode;
    state.showOriginal = false;
    $('board').hidden = mode !== 'grid';
    $('flicker').hidden = mode !== 'flicker';
    $('btn-mode').textContent = mode === 'grid' ? 'Flicker' : 'All versions';
    if (mode === 'grid') stopAuto();
    layout();
    render();
  }

  function toggleOriginal() {
    if (state.mode !== 'flicker') return;
    state.showOriginal = !state.showOriginal;
    render();
  }

  function stopAuto() {
    if (state.autoTimer) clearInterval(state.autoTimer);
    state.autoTimer = null;
    $('flicker-auto').checked = false;
  }

  $('flicker-auto').addEventListener('change', (event) => {
    if (event.target.checked) state.autoTimer = setInterval(toggleOriginal, 500);
    else stopAuto();
  });
  $('btn-submit').addEventListener('click', (e) => { e.currentTarget.blur(); submit(); });
  $('btn-back').addEventListener('click', (e) => { e.currentTarget.blur(); back(); });
  $('btn-finished-back').addEventListener('click', back);
  $('btn-forward').addEventListener('click', (e) => { e.currentTarget.blur(); forward(); });
  $('btn-mode').addEventListener('click', (e) => { e.currentTarget.blur(); setMode(state.mode === 'grid' ? 'flicker' : 'grid'); });
  $('btn-toggle').addEventListener('click', (e) => { e.currentTarget.blur(); toggleOriginal(); });
  $('btn-one').addEventListener('click', (e) => { e.currentTarget.blur(); view.oneToOne(); });
  $('btn-fit').addEventListener('click', (e) => { e.currentTarget.blur(); view.reset(); });

  document.addEventListener('keydown', (event) => {
    if ($('work').hidden && $('finished').hidden) return; // the name picker types freely
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const working = !$('work').hidden;
    const key = event.key;
    let handled = true;
    if (working && ['1', '2', '3'].includes(key)) setLabel(-1, LABELS[Number(key) - 1]);
    else if (working && (key === 'ArrowRight' || key === 'ArrowDown')) select(state.selected + 1);
    else if (working && (key === 'ArrowLeft' || key === 'ArrowUp')) select(state.selected - 1);
    else if (working && key === 'Enter') submit();
    else if (working && (key === 'f' || key === 'F')) setMode(state.mode === 'grid' ? 'flicker' : 'grid');
    else if (working && key === ' ') toggleOriginal();
    else if (working && (key === 'z' || key === 'Z')) view.oneToOne();
    else if (working && key === '0') view.reset();
    else if (key === 'b' || key === 'B' || key === 'Backspace') back();
    else handled = false;
    if (handled) event.preventDefault();
  });

  start();
})();
