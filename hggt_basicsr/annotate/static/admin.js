'use strict';
// The campaign view: per-annotator progress, time and label rates, agreement, statistics of the complete groups,
// problems, and a dataset browser (#group=<stem> shows one group with every vote and its final labels).

(() => {
  const { withToken, api, el, SyncView } = HGGT;
  const LABELS = ['Positive', 'Similar', 'Negative'];
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const view = new SyncView();
  const browse = { offset: 0, filter: 'all', total: 0 };
  const state = {}; // versions of the dataset, from the summary
  window.hggtView = view;

  const pct = (x) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
  const secs = (x) => (x === null || x === undefined ? '-' : x.toFixed(1));

  function showError(err) {
    $('error').hidden = !err;
    $('error').textContent = err ? err.message : '';
  }

  function tags(final, versions) {
    if (!final) return el('span', { class: 'hint', text: '-' });
    return el('span', {}, ...versions.map((v) => el('span', { class: `tag ${final[v]}`, title: `${v}: ${final[v]}`,
      text: `${v} ${final[v][0]}` })));
  }

  function table(header, rows) {
    return el('table', {}, el('thead', {}, el('tr', {}, ...header.map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', { text: String(c) }))))));
  }

  // ------------------------------------------------------------------------------------------ overview
  async function loadSummary() {
    let s;
    try {
      s = await api('/api/admin/summary');
    } catch (err) {
      showError(err);
      return;
    }
    showError(null);
    state.versions = s.versions;
    $('where').textContent = s.root;
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    const broken = Object.keys(s.broken).length;
    $('summary-cards').replaceChildren(
      ...[
        ['groups', s.groups],
        ['versions (K)', s.versions.length],
        ['with votes', s.labelled],
        [`complete (${s.expected_voters} vote${s.expected_voters > 1 ? 's' : ''})`, s.complete],
        ['broken', broken],
        ['annotators', s.annotators.length],
      ].map(([k, v]) => el('div', { class: 'stat' }, el('b', { text: String(v) }), el('span', { class: 'hint', text: k }))));

    $('annotators').tBodies[0].replaceChildren(...s.annotators.map((a) => {
      const st = a.stats || {};
      const rates = st.rates || {};
      const seconds = st.seconds || {};
      const frac = a.total ? a.done / a.total : 0;
      const bar = el('span', { class: 'bar-outer' }, el('span', { class: 'bar-inner' }));
      bar.firstChild.style.width = `${(100 * frac).toFixed(1)}%`;
      const open = el('a', { href: withToken(`/?annotator=${encodeURIComponent(a.name)}`), text: 'open' });
      return el('tr', { dataset: { annotator: a.name } },
        el('td', { text: a.name + (a.package ? ' (package)' : '') }),
        el('td', {}, bar, `${a.done} / ${a.total}`),
        el('td', { text: String(a.skipped) }),
        el('td', { text: secs(seconds.mean) }),
        el('td', { text: secs(seconds.median) }),
        ...LABELS.map((l) => el('td', { text: pct(rates[l]) })),
        el('td', { text: st.agreement === null || st.agreement === undefined ? '-' : `${pct(st.agreement)} of ${st.compared}` }),
        el('td', { text: String(a.unreadable) }),
        el('td', {}, open));
    }));

    const stats = s.statistics;
    const asOf = el('p', { class: 'hint', text: `From the label files as of ${s.statistics_time} (read again at most ` +
      'every 20 s while labels change).' });
    if (!stats) {
      $('statistics').replaceChildren(el('p', { class: 'hint', text: 'No group has complete votes yet.' }), asOf);
    } else {
      const rows = (t) => [...stats.versions, 'total'].map((v) => [v, ...LABELS.map((l) => t[v][l])]);
      $('statistics').replaceChildren(
        el('p', { text: `${stats.groups} complete groups.` }),
        el('h3', { text: 'Final (majority) labels per version' }), table(['version', ...LABELS], rows(stats.final)),
        el('h3', { text: 'Raw annotations per version' }), table(['version', ...LABELS], rows(stats.raw)),
        el('h3', { text: 'Groups by number of final Positive versions' }),
        table(['positives', 'groups'], Object.entries(stats.positives_per_group)),
        el('h3', { text: 'Vote agreement (labelled versions)' }),
        table(['unanimous', 'majority', 'all different'],
          [[stats.agreement.unanimous, stats.agreement.majority, stats.agreement.all_different]]), asOf);
    }
    const problems = [...s.problems, ...Object.entries(s.broken).map(([stem, why]) => `group ${stem} is broken: ${why}`)];
    $('problems-block').hidden = problems.length === 0;
    $('problems').replaceChildren(...problems.slice(0, 200).map((p) => el('li', { text: p })));
  }

  async function loadGroups() {
    let page;
    try {
      page = await api(`/api/admin/groups?offset=${browse.offset}&limit=${PAGE}&filter=${browse.filter}`);
    } catch (err) {
      showError(err);
      return;
    }
    browse.total = page.total;
    const versions = state.versions || [];
    $('page-info').textContent = page.total
      ? `${page.offset + 1}-${Math.min(page.total, page.offset + PAGE)} of ${page.total}` : 'none';
    $('btn-prev').disabled = browse.offset === 0;
    $('btn-next').disabled = browse.offset + PAGE >= page.total;
    $('groups').tBodies[0].replaceChildren(...page.groups.map((g) => el('tr', {
      class: 'clickable', dataset: { stem: g.stem },
      onclick: () => { location.hash = `group=${encodeURIComponent(g.stem)}`; },
    },
    el('td', {}, el('a', { href: `#group=${encodeURIComponent(g.stem)}`, text: g.stem })),
    el('td', {}, g.status === 'broken' ? el('span', { class: 'tag broken', text: 'broken' }) : g.status),
    el('td', { text: g.voters.join(', ') || '-' }),
    el('td', {}, tags(g.final, versions)))));
  }

  // ------------------------------------------------------------------------------------------ one group
  async function loadDetail(stem) {
    let g;
    try {
      g = await api(`/api/admin/groups/${encodeURIComponent(stem)}`);
    } catch (err) {
      showError(err);
      return;
    }
    showError(null);
    $('detail-title').textContent = `group ${g.stem}`;
    const voters = Object.keys(g.annotators);
    $('detail-status').textContent = g.broken ? `broken: ${g.broken}`
      : `${voters.length} vote(s)${g.complete ? ', complete' : ''}`;
    const keys = ['original', ...g.versions];
    const cards = keys.map((k) => {
      const final = g.final && k !== 'original' ? g.final[k] : null;
      const caption = el('div', { class: 'caption' }, el('strong', { text: k === 'original' ? 'Original' : k }),
        final ? el('span', {}, el('span', { class: `tag ${final}`, text: final }),
          ` ${g.votes[k]}/${voters.length}`) : el('span'));
      const img = el('img', { src: withToken(g.images[k]), alt: k, draggable: 'false' });
      return el('div', { class: 'card', dataset: { version: k } }, el('div', { class: 'panel' }, img), caption);
    });
    $('detail-board').replaceChildren(...cards);
    $('detail-votes').tHead.replaceChildren(el('tr', {}, ...['annotator', ...g.versions, 'seconds', 'order shown']
      .map((h) => el('th', { text: h }))));
    $('detail-votes').tBodies[0].replaceChildren(...voters.map((name) => {
      const a = g.annotators[name];
      return el('tr', {}, el('td', { text: name }),
        ...g.versions.map((v) => el('td', {}, el('span', { class: `tag ${a.labels[v]}`, text: a.labels[v] }))),
        el('td', { text: a.seconds === null ? '-' : String(a.seconds) }), el('td', { text: a.order.join(' ') }));
    }));
    view.reset();
    view.setPanels(Array.from($('detail-board').querySelectorAll('.panel')));
  }

  // ------------------------------------------------------------------------------------------ routing

  function route() {
    const match = location.hash.match(/^#group=(.+)$/);
    $('overview').hidden = !!match;
    $('detail').hidden = !match;
    if (match) loadDetail(decodeURIComponent(match[1]));
    else {
      view.setPanels([]);
      loadSummary().then(loadGroups);
    }
  }

  window.addEventListener('hashchange', route);
  $('detail-back').addEventListener('click', (event) => {
    event.preventDefault();
    location.hash = '';
  });
  $('btn-refresh').addEventListener('click', route);
  $('filter').addEventListener('change', (event) => {
    browse.filter = event.target.value;
    browse.offset = 0;
    loadGroups();
  });
  $('btn-prev').addEventListener('click', () => { browse.offset = Math.max(0, browse.offset - PAGE); loadGroups(); });
  $('btn-next').addEventListener('click', () => { browse.offset += PAGE; loadGroups(); });
  document.addEventListener('keydown', (event) => {
    if ($('detail').hidden || event.target.tagName === 'SELECT') return;
    if (event.key === '0') view.reset();
    else if (event.key === 'z' || event.key === 'Z') view.oneToOne();
  });
  // the overview refreshes itself while it is open
  setInterval(() => { if ($('detail').hidden && !document.hidden) loadSummary(); }, 15000);

  route();
})();
