'use strict';
// Shared by the annotate and admin pages: the token, the JSON API helper, and synchronised zoom / pan.

const HGGT = (() => {
  const params = new URLSearchParams(location.search);
  // The token arrives once as ?token=...; it is kept for this tab and sent as a Bearer header (API) or ?token= (images).
  if (params.get('token')) sessionStorage.setItem('hggt-token', params.get('token'));
  const token = params.get('token') || sessionStorage.getItem('hggt-token') || '';

  function withToken(url) {
    return token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url;
  }

  async function api(path, options = {}) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method: options.method || 'GET', headers };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.detail) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const MAX_SCALE = 32;

  // One zoom / pan state for every attached panel, in panel-normalised units (tx, ty: offset as a fraction of the
  // panel size; s: magnification of the fitted image), so panels of any size show the same region of their image.
  class SyncView {
    constructor() {
      this.s = 1;
      this.tx = 0;
      this.ty = 0;
      this.panels = [];
    }

    setPanels(panels) {
      this.panels = panels;
      for (const panel of panels) this.attach(panel);
      this.apply();
    }

    attach(panel) {
      if (panel.dataset.synced) return;
      panel.dataset.synced = '1';
      panel.addEventListener('wheel', (event) => {
        event.preventDefault();
        const r = panel.getBoundingClientRect();
        const factor = Math.exp(-event.deltaY * 0.0015);
        this.zoomAt((event.clientX - r.left) / r.width, (event.clientY - r.top) / r.height, factor);
      }, { passive: false });
      panel.addEventListener('pointerdown', (event) => {
        if (event.button !== 0) return;
        panel.setPointerCapture(event.pointerId);
        let last = [event.clientX, event.clientY];
        panel.classList.add('dragging');
        const move = (e) => {
          this.panBy((e.clientX - last[0]) / panel.clientWidth, (e.clientY - last[1]) / panel.clientHeight);
          last = [e.clientX, e.clientY];
        };
        const up = () => {
          panel.classList.remove('dragging');
          panel.removeEventListener('pointermove', move);
          panel.removeEventListener('pointerup', up);
          panel.removeEventListener('pointercancel', up);
        };
        panel.addEventListener('pointermove', move);
        panel.addEventListener('pointerup', up);
        panel.addEventListener('pointercancel', up);
      });
    }

    zoomAt(px, py, factor) {
      const s = Math.min(MAX_SCALE, Math.max(1, this.s * factor));
      // keep the image point under the cursor where it is: u = (p - t) / s before and after
      this.tx = px - ((px - this.tx) / this.s) * s;
      this.ty = py - ((py - this.ty) / this.s) * s;
      this.s = s;
      this.apply();
    }

    panBy(dx, dy) {
      this.tx += dx;
      this.ty += dy;
      this.apply();
    }

    reset() {
      this.s = 1;
      this.tx = 0;
      this.ty = 0;
      this.apply();
    }

    // One image pixel per screen pixel in the first visible panel, centred where the view is centred now (an image
    // smaller than its panel is shown smaller, centred).
    oneToOne() {
      const panel = this.panels.find((p) => p.offsetParent !== null);
      const img = panel && panel.querySelector('img');
      if (!img || !img.naturalWidth) return;
      const s = Math.min(MAX_SCALE, img.naturalWidth / panel.clientWidth);
      const cx = (0.5 - this.tx) / this.s;
      const cy = (0.5 - this.ty) / this.s;
      this.s = s;
      this.tx = 0.5 - cx * s;
      this.ty = 0.5 - cy * s;
      this.apply();
    }

    apply() {
      // the image always covers the panel; one smaller than the panel (1:1 of a small image) stays centred
      const fit = (t) => (this.s < 1 ? (1 - this.s) / 2 : Math.min(0, Math.max(1 - this.s, t)));
      this.tx = fit(this.tx);
      this.ty = fit(this.ty);
      for (const panel of this.panels) {
        const w = panel.clientWidth;
        const h = panel.clientHeight;
        const transform = `translate(${(this.tx * w).toFixed(2)}px, ${(this.ty * h).toFixed(2)}px) scale(${this.s.toFixed(4)})`;
        for (const img of panel.querySelectorAll('img')) {
          img.style.transform = transform;
          // crisp pixels once one image pixel covers more than one screen pixel
          img.classList.toggle('pixelated', img.naturalWidth > 0 && (this.s * w) / img.naturalWidth > 1.01);
        }
      }
      const zoom = document.getElementById('zoom');
      if (zoom) zoom.textContent = `zoom ${this.s.toFixed(1)}x`;
    }
  }

  return { params, token, withToken, api, el, SyncView };
})();
