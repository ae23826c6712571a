"""`hggt annotate` in a real headless Chromium (Playwright driving Debian's ``chromium``): label three groups with the
keyboard, reload and resume, revise one, compare the JSON on disk with what was clicked, zoom one panel and see every
panel follow, flicker view, the admin view; screenshots into pytest's tmp dir (and ``$HGGT_SCREENSHOT_DIR``).

Skipped when chromium or playwright is missing, unless ``HGGT_REQUIRE_BROWSER`` is set (CI): then it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

from hggt_basicsr.annotate import Store, create_app
from hggt_basicsr.cli.annotate_cmd import bind
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.labels import read_annotation_record

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser tests skip (or fail under HGGT_REQUIRE_BROWSER) below
    sync_playwright = None

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']  # fmt: skip
STEMS = ['harbour-0-0', 'harbour-0-288', 'harbour-288-0', 'harbour-288-288']
KEYS = {'1': 'Positive', '2': 'Similar', '3': 'Negative'}
ALL_IMAGES_LOADED = "Array.from(document.querySelectorAll('#board img')).every(i => i.complete && i.naturalWidth > 0)"


def scene(seed: int, size: int = 192) -> np.ndarray:
    """A photo-like BGR patch: sky gradient, hills, a striped roof, a sign; mild sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32)
    img[..., 0] = 200 - 0.4 * y  # blue sky fading down
    img[..., 1] = 150 - 0.2 * y
    img[..., 2] = 90 + 0.3 * y
    hill = size * (0.55 + 0.08 * np.sin(x / (11 + seed) + seed))
    ground = y > hill
    img[ground] = np.stack([40 + 0 * x, 110 + 30 * np.sin(x / 3 + y / 5), 60 + 0 * x], -1)[ground]
    x0 = int(size * (0.15 + 0.1 * (seed % 4)))
    roof = (x > x0) & (x < x0 + size // 3) & (y > size * 0.35) & (y < size * 0.6)
    img[roof] = np.stack([60 + 0 * x, 60 + 0 * x, 150 + 60 * ((x.astype(int) // 3) % 2)], -1)[roof]
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(img, (int(size * 0.78), int(size * 0.2)), size // 10, (80, 220, 250), -1)
    cv2.putText(img, f'HGGT {seed}', (x0, int(size * 0.33)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def versions_of(original: np.ndarray) -> dict[str, np.ndarray]:
    """Four 'enhanced' versions that differ visibly: sharpened, denoised, over-sharpened, noisier."""
    f = original.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), 1.2)
    rng = np.random.default_rng(1)
    out = {'01': f + 0.8 * (f - blur), '02': cv2.bilateralFilter(original, 7, 40, 5).astype(np.float32),
           '03': f + 3.0 * (f - blur), '04': f + rng.normal(0, 14, f.shape)}  # fmt: skip
    return {k: np.clip(v, 0, 255).astype(np.uint8) for k, v in out.items()}


def write_images(images_dir: Path) -> None:
    for i, stem in enumerate(STEMS):
        original = scene(i)
        for version, img in {'original': original, **versions_of(original)}.items():
            name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
            (images_dir / version).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(images_dir / version / name), img)


@pytest.fixture(scope='module')
def browser():
    missing = None
    if sync_playwright is None:
        missing = 'playwright is not installed (pip install playwright)'
    elif not CHROMIUM.exists():
        missing = f'{CHROMIUM} is missing (apt-get install chromium)'
    if missing:
        if os.environ.get('HGGT_REQUIRE_BROWSER'):
            pytest.fail(f'HGGT_REQUIRE_BROWSER is set but {missing}')
        pytest.skip(missing)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def serving(root: Path, token: str | None = None):
    """The app over ``root``, served by uvicorn from a thread on a free loopback port; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(Store(root), token=token), log_level='warning', access_log=False))
    sock = bind('127.0.0.1', 0)
    thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        yield f'http://127.0.0.1:{sock.getsockname()[1]}'
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def served(tmp_path):
    root = tmp_path / 'OUT'
    write_images(root / 'images')
    with serving(root) as base:
        yield root, base


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get('HGGT_SCREENSHOT_DIR'):
        Path(os.environ['HGGT_SCREENSHOT_DIR']).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ['HGGT_SCREENSHOT_DIR']) / name)
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    return path


def group_state(page) -> dict:
    return page.evaluate('({stem: hggtState.group.stem, order: hggtState.group.versions.map(v => v.version), '
                         'labels: {...hggtState.labels}, selected: hggtState.selected})')  # fmt: skip


def wait_for_group(page, previous: str | None) -> dict:
    page.wait_for_function(f'hggtState.group && hggtState.group.stem !== {json.dumps(previous)} && !hggtState.busy')
    page.wait_for_function(ALL_IMAGES_LOADED)
    return group_state(page)


def transforms(page) -> list[tuple[float, float, float]]:
    """(tx px, ty px, scale) of every image of the grid view, as the browser applies them."""
    found = page.eval_on_selector_all('#board .panel img', 'imgs => imgs.map(i => i.style.transform)')
    pattern = r'translate\(([-\d.]+)px, ([-\d.]+)px\) scale\(([\d.]+)\)'
    values = [[float(x) for x in re.fullmatch(pattern, t).groups()] for t in found]
    return [(round(tx, 2), round(ty, 2), s) for tx, ty, s in values]


def test_label_resume_revise_zoom_and_admin(browser, served, tmp_path, capsys):
    root, base = served
    page = browser.new_page(viewport={'width': 1280, 'height': 800}, bypass_csp=True)  # the page's CSP forbids eval
    page.goto(f'{base}/?annotator=tester')
    expected: dict[str, dict[str, str]] = {}
    orders: dict[str, list[str]] = {}

    # group 1: keys in slot order; Enter before the last label is refused and writes nothing
    g = wait_for_group(page, None)
    assert g['stem'] == STEMS[0] and page.inner_text('#progress').startswith('0 / 4 done')
    for key in '123':
        page.keyboard.press(key)
    page.keyboard.press('Enter')
    assert 'version 4 has no label' in page.inner_text('#message') and not (root / 'labels').exists()
    page.keyboard.press('1')
    expected[g['stem']] = dict(zip(g['order'], ['Positive', 'Similar', 'Negative', 'Positive']))
    orders[g['stem']] = g['order']
    assert group_state(page)['labels'] == expected[g['stem']]
    page.keyboard.press('Enter')

    # group 2: arrows move the selection; a label moves on to the next unlabelled version
    g = wait_for_group(page, g['stem'])
    page.keyboard.press('ArrowRight')
    page.keyboard.press('ArrowRight')
    page.keyboard.press('3')  # slot 3 Negative, selection -> slot 4
    assert group_state(page)['selected'] == 3
    for key in ['ArrowLeft', 'ArrowLeft', 'ArrowLeft', '1', '2', '1']:  # slot 1 P, slot 2 S, slot 4 P
        page.keyboard.press(key)
    expected[g['stem']] = dict(zip(g['order'], ['Positive', 'Similar', 'Negative', 'Positive']))
    orders[g['stem']] = g['order']
    assert group_state(page)['labels'] == expected[g['stem']]
    page.keyboard.press('Enter')

    # group 3: clicks and keys mixed; the screenshot shows a group half labelled
    g = wait_for_group(page, g['stem'])
    page.click('#board .card.version[data-slot="2"] button.lab-Negative')  # selection -> slot 3
    assert group_state(page)['selected'] == 2
    page.keyboard.press('ArrowLeft')
    page.keyboard.press('ArrowLeft')
    page.keyboard.press('1')
    shoot(page, tmp_path, 'annotate.png')
    page.keyboard.press('2')
    page.keyboard.press('2')
    expected[g['stem']] = dict(zip(g['order'], ['Positive', 'Negative', 'Similar', 'Similar']))
    orders[g['stem']] = g['order']
    assert group_state(page)['labels'] == expected[g['stem']]
    page.keyboard.press('Enter')
    g = wait_for_group(page, g['stem'])
    assert g['stem'] == STEMS[3]

    # reload: the page resumes at the first unlabelled group
    page.reload()
    g = wait_for_group(page, None)
    assert g['stem'] == STEMS[3] and page.inner_text('#progress').startswith('3 / 4 done')

    # revise group 3: back shows the saved labels in the saved order; change slot 1 and submit again
    page.keyboard.press('b')
    g = wait_for_group(page, STEMS[3])
    assert g['stem'] == STEMS[2] and g['order'] == orders[STEMS[2]] and g['labels'] == expected[STEMS[2]]
    assert page.is_visible('#revision')
    page.keyboard.press('ArrowLeft')  # selection starts at slot 1 when every version has a label
    page.keyboard.press('3')
    expected[STEMS[2]][g['order'][0]] = 'Negative'
    page.keyboard.press('Enter')
    g = wait_for_group(page, STEMS[2])
    assert g['stem'] == STEMS[3] and 'revised' in page.inner_text('#message')

    # the JSON on disk is what was clicked, in the order it was shown
    for stem, labels in expected.items():
        record = read_annotation_record(root / 'labels' / 'tester' / f'{stem}.json')
        assert record.labels == dict(sorted(labels.items())) and record.order == orders[stem]
        assert record.seconds is not None and re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$', record.time_cost['Start'])

    # zoom one panel: every panel follows (same transform), then drag pans all of them
    assert set(transforms(page)) == {(0, 0, 1)}
    box = page.locator('#board .card.version[data-slot="2"] .panel').bounding_box()
    page.mouse.move(box['x'] + box['width'] * 0.3, box['y'] + box['height'] * 0.4)
    page.mouse.wheel(0, -500)
    page.wait_for_function('hggtView.s > 1')
    zoomed = transforms(page)
    assert len(zoomed) == 5 and len(set(zoomed)) == 1
    scale = zoomed[0][2]
    assert scale > 1.5 and zoomed[0][0] < 0 and zoomed[0][1] < 0
    page.mouse.down()
    page.mouse.move(box['x'] + box['width'] * 0.3 + 30, box['y'] + box['height'] * 0.4 + 20, steps=4)
    page.mouse.up()
    panned = transforms(page)
    assert len(set(panned)) == 1 and panned[0] != zoomed[0]
    shoot(page, tmp_path, 'annotate-zoom.png')
    page.keyboard.press('z')  # 1:1: one image pixel per screen pixel, in every panel
    panel_px = page.evaluate("document.querySelector('#board .panel').clientWidth")
    one = transforms(page)
    assert len(set(one)) == 1 and one[0][2] == pytest.approx(192 / panel_px, abs=1e-3)
    page.keyboard.press('0')
    assert set(transforms(page)) == {(0, 0, 1)}

    # flicker view: one version against the original at the same place
    page.keyboard.press('f')
    assert page.is_visible('#flicker') and not page.is_visible('#board')
    page.keyboard.press(' ')
    assert 'show-original' in page.get_attribute('#flicker-panel', 'class')
    assert page.inner_text('#flicker-what') == 'Original'
    shoot(page, tmp_path, 'annotate-flicker.png')
    page.keyboard.press('f')

    # the admin view shows the annotator's progress and browses a group with its final labels
    page.goto(f'{base}/admin')
    page.wait_for_selector('#annotators tr[data-annotator="tester"]')
    assert '3 / 4' in page.inner_text('#annotators tr[data-annotator="tester"]')
    page.wait_for_selector('#groups tr[data-stem]')
    page.wait_for_selector('#statistics table')
    shoot(page, tmp_path, 'admin.png')
    page.click(f'#groups tr[data-stem="{STEMS[2]}"]')
    page.wait_for_selector('#detail-board .card[data-version="04"] img')
    page.wait_for_function("Array.from(document.querySelectorAll('#detail-board img')).every(i => i.naturalWidth > 0)")
    final = expected[STEMS[2]]
    for version, label in final.items():
        assert label in page.inner_text(f'#detail-board .card[data-version="{version}"] .caption')
    shoot(page, tmp_path, 'admin-group.png')
    page.close()

    # the labels load in HGGTDataset and give the expected `hggt labels stats`
    ds = HGGTDataset({'dataroot_all_gt': str(root / 'images'), 'dataroot_all_json': str(root / 'labels'),
                      'group_filter': 'all', 'use_hflip': False})  # fmt: skip
    assert ds.stems == STEMS[:3]
    assert hggt_main(['labels', 'stats', str(root / 'labels'), '--json']) == 0
    stats = json.loads(capsys.readouterr().out)
    want = {name: sum(list(labels.values()).count(name) for labels in expected.values()) for name in KEYS.values()}
    assert stats['groups'] == 3 and stats['annotators'] == ['tester'] and stats['final']['total'] == want


def test_name_picker_token_and_guide(browser, tmp_path):
    root = tmp_path / 'OUT'
    write_images(root / 'images')
    with serving(root, token='s3cret') as base:
        page = browser.new_page(viewport={'width': 1280, 'height': 800}, bypass_csp=True)
        page.goto(f'{base}/')  # no token: the page says so instead of showing anything
        page.wait_for_selector('#failure:not([hidden])')
        assert 'token' in page.inner_text('#failure-text')
        page.goto(f'{base}/?token=s3cret')  # the name picker; the token goes with every call and image
        page.wait_for_selector('#picker:not([hidden])')
        page.fill('#picker-name', 'bad name!')
        page.keyboard.press('Enter')
        assert page.is_visible('#picker') and not page.is_visible('#work')
        page.fill('#picker-name', 'newcomer')
        page.keyboard.press('Enter')
        g = wait_for_group(page, None)
        assert g['stem'] == STEMS[0] and 'annotator=newcomer' in page.url and 'token' not in page.url
        assert page.inner_text('#who') == 'newcomer'
        page.reload()  # the tab keeps the token
        assert wait_for_group(page, None)['stem'] == STEMS[0]
        page.goto(f'{base}/guide')
        assert 'What to judge' in page.inner_text('body') and 'Do not judge the content' in page.inner_text('body')
        page.close()
