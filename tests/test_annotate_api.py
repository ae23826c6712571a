"""`hggt annotate` through FastAPI's test client: the whole flow, resume, revision, concurrency, every bad request."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import cv2
import httpx
import pytest
from fastapi.testclient import TestClient
from layout import group_image

from hggt_basicsr.annotate import Store, create_app, resolve_layout, shown_order
from hggt_basicsr.annotate import store as store_module
from hggt_basicsr.campaign.package import Package, read_package, write_package
from hggt_basicsr.cli import annotate_cmd
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.errors import DataError
from hggt_basicsr.labels import (
    aggregate,
    label_statistics,
    load_group_labels,
    read_annotation_record,
    write_annotation,
)

STEMS = ['img-0-0', 'img-0-288', 'pic-16-32', 'pic-300-8']
VERSIONS = ['01', '02', '03', '04']
P, S, N = 'Positive', 'Similar', 'Negative'


def write_campaign(images_dir: Path, stems=STEMS, k: int = 4, size: int = 16) -> None:
    """``images_dir/{original,01..0K}/`` PNGs in the HGGT names."""
    for version in ['original', *[f'{i:02d}' for i in range(1, k + 1)]]:
        (images_dir / version).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
            cv2.imwrite(str(images_dir / version / name), group_image(stem, version, size=size))


@pytest.fixture
def out(tmp_path) -> Path:
    root = tmp_path / 'OUT'
    write_campaign(root / 'images')
    (tmp_path / 'secret.txt').write_text('outside the campaign root')
    return root


def client_for(root: Path, **kw) -> TestClient:
    token = kw.pop('token', None)
    return TestClient(create_app(Store(root, **kw), token=token))


def labels_of(i: int) -> dict[str, str]:
    """A fixed, different labelling per group index."""
    cycle = [P, S, N, P, P, S]
    return {v: cycle[(i + j) % len(cycle)] for j, v in enumerate(VERSIONS)}


def submit(client, name, stem, labels, **extra):
    return client.post(f'/api/annotators/{name}/groups/{stem}/labels', json={'labels': labels, **extra})


def label_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / 'labels').rglob('*') if p.is_file())


# ---------------------------------------------------------------------------------------------------- layout
def test_layouts_and_labels_folder(tmp_path):
    write_campaign(tmp_path / 'sel' / 'images', k=2)  # hggt select-patches
    write_campaign(tmp_path / 'enh', k=2)  # hggt enhance: original/ directly under the root
    write_campaign(tmp_path / 'train' / 'images' / '0-20193', k=2)  # the published nesting
    for folder, images, labels in [
        ('sel', 'sel/images', 'sel/labels'),
        ('enh', 'enh', 'enh/labels'),
        ('train', 'train/images/0-20193', 'train/labels/0-20193'),
    ]:
        layout = resolve_layout(tmp_path / folder)
        assert (layout.images_dir, layout.labels_dir) == (tmp_path / images, tmp_path / labels)
    assert resolve_layout(tmp_path / 'sel', tmp_path / 'mine').labels_dir == tmp_path / 'mine'
    with pytest.raises(DataError, match='no such folder'):
        Store(tmp_path / 'nope')
    (tmp_path / 'empty' / 'images' / 'original').mkdir(parents=True)
    with pytest.raises(DataError, match='no enhanced version folders'):
        Store(tmp_path / 'empty')


def test_shown_order_is_a_stable_per_annotator_permutation():
    stems = [f's{i}' for i in range(12)]
    for stem in stems:
        order = shown_order('alice', stem, VERSIONS)
        assert sorted(order) == VERSIONS and order == shown_order('alice', stem, VERSIONS)
    assert any(shown_order('alice', s, VERSIONS) != shown_order('bob', s, VERSIONS) for s in stems)
    assert len({tuple(shown_order('alice', s, VERSIONS)) for s in stems}) > 3  # not one fixed order


# ---------------------------------------------------------------------------------------------------- the flow
def test_whole_flow_writes_the_published_format(out, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr(store_module, '_now', lambda: clock[0])
    client = client_for(out)
    assert client.get('/api/config').json() == {
        'groups': 4, 'versions': VERSIONS, 'annotator': None, 'labels': [P, S, N],
    }  # fmt: skip
    for i, stem in enumerate(STEMS):
        view = client.get('/api/annotators/alice/next').json()
        assert view['stem'] == stem and view['position'] == i and view['labels'] is None
        assert [v['version'] for v in view['versions']] == shown_order('alice', stem, VERSIONS)
        assert view['progress']['done'] == i and view['progress']['total'] == 4
        assert view['prev'] == (STEMS[i - 1] if i else None)
        assert view['next'] == (STEMS[i + 1] if i + 1 < len(STEMS) else None)
        assert len(view['prefetch']) == (5 if i + 1 < len(STEMS) else 0)
        clock[0] += 7 + i
        result = submit(client, 'alice', stem, labels_of(i))
        assert result.status_code == 200, result.text
        assert result.json()['saved'] == f'labels/alice/{stem}.json' and not result.json()['revision']
        record = read_annotation_record(out / 'labels' / 'alice' / f'{stem}.json')
        assert record.labels == labels_of(i)
        assert record.order == shown_order('alice', stem, VERSIONS)
        assert record.seconds == 7 + i
        start = datetime.strptime(record.time_cost['Start'], store_module.TIME_FORMAT)
        end = datetime.strptime(record.time_cost['End'], store_module.TIME_FORMAT)
        assert (end - start).total_seconds() == 7 + i
        doc = json.loads((out / 'labels' / 'alice' / f'{stem}.json').read_text())
        assert doc['Picture_1'] == {'Name': f'{stem}.png', 'File': 'original', 'Label': None}
        assert [doc[f'Picture_{j + 2}']['File'] for j in range(4)] == record.order
    done = client.get('/api/annotators/alice/next').json()
    assert done['finished'] and done['stem'] is None and done['prev'] == STEMS[-1]
    assert done['progress'] == {'done': 4, 'total': 4, 'skipped': 0, 'mean_seconds': 8.5}
    # the labels load in the training dataset and give the statistics of what was submitted
    gl = load_group_labels(out / 'labels')
    assert gl.stems == STEMS and gl.annotators == ['alice']
    submitted = Counter(label for i in range(4) for label in labels_of(i).values())
    assert label_statistics(gl)['final']['total'] == dict(submitted) == {P: 9, S: 4, N: 3}
    ds = HGGTDataset({'dataroot_all_gt': str(out / 'images'), 'dataroot_all_json': str(out / 'labels'),
                      'group_filter': 'all', 'use_hflip': False})  # fmt: skip
    item = ds[2]
    assert len(ds) == 4 and item['key'] == STEMS[2] and item['img_list'].shape == (5, 3, 16, 16)
    codes = {P: 1, S: 2, N: 3}
    assert item['label_list'].tolist() == [0, *[codes[labels_of(2)[v]] for v in VERSIONS]]


def test_images_are_served_as_stored_with_cache_headers(out):
    client = client_for(out)
    response = client.get('/api/images/pic-16-32/03')
    assert response.status_code == 200 and response.headers['content-type'] == 'image/png'
    assert response.content == (out / 'images' / '03' / 'pic-16-32_03.png').read_bytes()
    assert 'immutable' in response.headers['cache-control'] and 'max-age' in response.headers['cache-control']
    etag = response.headers['etag']
    again = client.get('/api/images/pic-16-32/03', headers={'If-None-Match': etag})
    assert again.status_code == 304 and again.content == b''
    assert client.get('/api/images/pic-16-32/original').content == (out / 'images/original/pic-16-32.png').read_bytes()


# ---------------------------------------------------------------------------------------------------- resume
def test_resume_after_reload_and_restart(out):
    client = client_for(out)
    for i in range(2):
        stem = client.get('/api/annotators/bob/next').json()['stem']
        assert submit(client, 'bob', stem, labels_of(i)).status_code == 200
    assert client.get('/api/annotators/bob/next').json()['stem'] == STEMS[2]  # reload: same server
    restarted = client_for(out)
    view = restarted.get('/api/annotators/bob/next').json()
    assert view['stem'] == STEMS[2] and view['progress']['done'] == 2 and view['prev'] == STEMS[1]
    old = restarted.get(f'/api/annotators/bob/groups/{STEMS[1]}').json()
    assert old['labels'] == labels_of(1) and old['after'] is None and old['next'] == STEMS[2]
    assert restarted.get('/api/annotators').json() == {'annotators': ['bob']}


def test_revision_keeps_first_start_order_and_adds_time(out, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr(store_module, '_now', lambda: clock[0])
    stem = STEMS[0]
    path = out / 'labels' / 'carol' / f'{stem}.json'
    # a file written by another tool, in its own order: its order wins for the revision
    write_annotation(path, stem, labels_of(0), order=['04', '03', '02', '01'],
                     time_cost={'Start': '2023-01-02 03:04:05', 'End': '2023-01-02 03:04:15', 'Total': 10})  # fmt: skip
    client = client_for(out)
    view = client.get(f'/api/annotators/carol/groups/{stem}').json()
    assert [v['version'] for v in view['versions']] == ['04', '03', '02', '01'] and view['labels'] == labels_of(0)
    clock[0] += 5
    result = submit(client, 'carol', stem, labels_of(3)).json()
    assert result['revision'] and result['time_cost']['Start'] == '2023-01-02 03:04:05'
    record = read_annotation_record(path)
    assert record.labels == labels_of(3) and record.order == ['04', '03', '02', '01'] and record.seconds == 15
    assert record.time_cost['End'] == store_module._stamp(clock[0])
    # a submit the server never served (restart between showing and submitting): the page's own timing counts
    restarted = client_for(out)
    assert submit(restarted, 'carol', STEMS[1], labels_of(1), seconds=12.4).status_code == 200
    assert read_annotation_record(out / 'labels' / 'carol' / f'{STEMS[1]}.json').seconds == 12
    assert submit(restarted, 'carol', STEMS[2], labels_of(1), seconds=-5).json()['time_cost']['Total'] == 0


# ---------------------------------------------------------------------------------------------------- concurrency
def test_two_annotators_at_once_each_write_only_their_files(out):
    with TestClient(create_app(Store(out))) as client:

        def work(name: str, offset: int) -> list[str]:
            done = []
            while True:
                view = client.get(f'/api/annotators/{name}/next').json()
                if view['finished']:
                    return done
                i = STEMS.index(view['stem'])
                response = submit(client, name, view['stem'], labels_of(i + offset))
                assert response.status_code == 200, response.text
                client.get(view['original'])
                done.append(view['stem'])

        with ThreadPoolExecutor(4) as pool:
            a, b = pool.submit(work, 'ann01', 0), pool.submit(work, 'ann02', 1)
            assert a.result() == STEMS and b.result() == STEMS
        # the same annotator racing on one group: the file is one of the submissions, whole
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda i: submit(client, 'ann01', STEMS[0], labels_of(i)).status_code, range(8)))
        assert codes == [200] * 8
    assert read_annotation_record(out / 'labels/ann01' / f'{STEMS[0]}.json').labels in [labels_of(i) for i in range(8)]
    for i, stem in enumerate(STEMS[1:], start=1):
        assert read_annotation_record(out / 'labels/ann01' / f'{stem}.json').labels == labels_of(i)
        assert read_annotation_record(out / 'labels/ann02' / f'{stem}.json').labels == labels_of(i + 1)
    assert not [p for p in (out / 'labels').rglob('.*')]  # no temporary file left behind
    gl = load_group_labels(out / 'labels')
    assert gl.annotators == ['ann01', 'ann02'] and (gl.votes[:, 0] == 2).all()


# ---------------------------------------------------------------------------------------------------- bad requests
def test_bad_requests_are_refused_and_write_nothing(out):
    client = client_for(out)
    good = labels_of(0)
    cases = [
        ('POST', '/api/annotators/alice/groups/no-such-group/labels', {'labels': good}, 400, 'does not exist'),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', {'labels': {**good, '05': P}}, 400, "'05'"),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', {'labels': {'01': P}}, 400, '02, 03, 04'),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', {'labels': {**good, '02': 'Good'}}, 400, 'Good'),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', {'labels': ['Positive']}, 400, 'labels'),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', {'labels': good, 'who': 'x'}, 400, 'who'),
        ('POST', f'/api/annotators/alice/groups/{STEMS[0]}/labels', None, 400, 'body'),
        ('POST', f'/api/annotators/al%20ice/groups/{STEMS[0]}/labels', {'labels': good}, 400, 'annotator name'),
        ('POST', f'/api/annotators/{"x" * 65}/groups/{STEMS[0]}/labels', {'labels': good}, 400, 'annotator name'),
        ('POST', f'/api/annotators/%2E%2E/groups/{STEMS[0]}/labels', {'labels': good}, 400, 'annotator name'),
        ('POST', '/api/annotators/alice/groups/%2E%2E/labels', {'labels': good}, 400, 'does not exist'),
        ('GET', '/api/annotators/a.b/next', None, 400, 'annotator name'),
        ('GET', '/api/annotators/alice/groups/nope', None, 404, 'no group'),
        ('GET', '/api/images/..%2F..%2Fsecret.txt/original', None, 404, ''),
        ('GET', '/api/images/%2E%2E/original', None, 404, 'no image'),
        ('GET', f'/api/images/{STEMS[0]}/..%2F..%2F..%2Fsecret.txt', None, 404, ''),
        ('GET', f'/api/images/{STEMS[0]}/05', None, 404, 'no image'),
        ('GET', '/static/..%2F..%2F..%2Fsecret.txt', None, 404, ''),
        ('GET', '/static/../app.py', None, 404, ''),
        ('GET', '/api/admin/groups?filter=weird', None, 400, 'filter'),
        ('GET', '/api/admin/groups?limit=0', None, 400, 'limit'),
        ('GET', '/api/admin/groups/nope', None, 404, 'no group'),
    ]
    for method, url, body, status, reason in cases:
        response = client.request(method, url, json=body)
        assert response.status_code == status, (url, response.status_code, response.text)
        assert 'outside the campaign root' not in response.text
        assert reason in response.json()['detail'], (url, response.text)
    assert label_files(out) == []
    (out / 'labels' / 'frank').parent.mkdir()
    (out / 'labels' / 'frank').write_text('a file where the folder should be')
    response = submit(client, 'frank', STEMS[0], good)
    assert response.status_code == 500 and 'cannot write labels' in response.json()['detail']
    assert client.get('/api/annotators/frank/next').json()['progress']['done'] == 0


def test_broken_groups_and_unreadable_label_files(out, caplog):
    (out / 'images' / '03' / f'{STEMS[1]}_03.png').unlink()
    bad = out / 'labels' / 'dave' / f'{STEMS[0]}.json'
    bad.parent.mkdir(parents=True)
    bad.write_text('{"Picture_1": ')
    wrong_k = out / 'labels' / 'dave' / f'{STEMS[2]}.json'
    write_annotation(wrong_k, STEMS[2], {'01': P, '02': S})
    store = Store(out)
    assert any(str(bad) in p and 'malformed JSON' in p for p in store.problems)
    assert any(str(wrong_k) in p and 'versions' in p for p in store.problems)
    client = TestClient(create_app(store))
    assert client.get('/api/annotators/dave/next').json()['stem'] == STEMS[3]  # 0 unreadable, 1 broken, 2 wrong K
    assert client.get('/api/annotators/erin/next').json()['stem'] == STEMS[0]
    for stem, reason in [(STEMS[0], 'malformed JSON'), (STEMS[1], 'broken'), (STEMS[2], 'versions')]:
        response = submit(client, 'dave', stem, labels_of(0))
        assert response.status_code == 409 and reason in response.json()['detail']
        assert client.get(f'/api/annotators/dave/groups/{stem}').status_code == 409
    assert bad.read_text() == '{"Picture_1": ' and read_annotation_record(wrong_k).labels == {'01': P, '02': S}
    assert submit(client, 'dave', STEMS[3], labels_of(0)).status_code == 200
    final = client.get('/api/annotators/dave/next').json()
    assert final['finished'] and final['progress'] == {'done': 1, 'total': 4, 'skipped': 3, 'mean_seconds': 0.0}
    summary = client.get('/api/admin/summary').json()
    assert list(summary['broken']) == [STEMS[1]] and f'{STEMS[1]}_03.png' in summary['broken'][STEMS[1]]
    assert any('malformed JSON' in p for p in summary['problems'])
    dave = next(a for a in summary['annotators'] if a['name'] == 'dave')
    assert dave['unreadable'] == 2 and dave['done'] == 1
    page = client.get('/api/admin/groups?filter=broken').json()
    assert [g['stem'] for g in page['groups']] == [STEMS[1]]


# ---------------------------------------------------------------------------------------------------- token
def test_token_guards_the_api_and_the_admin_view(out):
    client = client_for(out, token='s3cret')
    assert client.get('/api/config').status_code == 401
    assert client.get('/api/config', headers={'Authorization': 'Bearer wrong'}).status_code == 401
    assert client.get('/api/config', headers={'Authorization': 'Bearer s3cret'}).status_code == 200
    assert client.get('/api/config?token=s3cret').status_code == 200
    assert client.get(f'/api/images/{STEMS[0]}/01').status_code == 401
    assert client.get(f'/api/images/{STEMS[0]}/01?token=s3cret').status_code == 200
    assert submit(client, 'alice', STEMS[0], labels_of(0)).status_code == 401 and label_files(out) == []
    assert client.get('/admin').status_code == 401
    assert 'HGGT campaign' in client.get('/admin?token=s3cret').text
    for page in ['/', '/guide', '/static/app.js', '/static/style.css']:  # static pages hold no data
        assert client.get(page).status_code == 200


# ---------------------------------------------------------------------------------------------------- packages
def test_packages_decide_the_groups(out):
    alice = Package('alice', [STEMS[2], STEMS[0]], [[0, 2]], per_group=2, annotators=2)
    write_package(alice, out / 'packages/alice.json')
    write_package(Package('bob', [STEMS[0], STEMS[3], 'gone'], [[0, 3]], per_group=2), out / 'packages/bob.json')
    # --package: that annotator only, their groups in their order
    client = client_for(out, package=read_package(out / 'packages/alice.json'))
    assert client.get('/api/config').json()['annotator'] == 'alice'
    assert client.get('/api/annotators').json() == {'annotators': ['alice']}
    assert client.get('/api/annotators/bob/next').status_code == 403
    assert submit(client, 'bob', STEMS[0], labels_of(0)).status_code == 403
    assert client.get('/api/annotators/alice/next').json()['stem'] == STEMS[2]
    response = submit(client, 'alice', STEMS[1], labels_of(0))
    assert response.status_code == 403 and 'not in the package' in response.json()['detail']
    assert client.get(f'/api/annotators/alice/groups/{STEMS[1]}').status_code == 403
    # one server for the campaign: whoever picks a name with a package gets it; anyone else every group
    store = Store(out)
    assert any("'gone'" not in p and 'gone' in p for p in store.problems)
    client = TestClient(create_app(store))
    assert client.get('/api/annotators').json() == {'annotators': ['alice', 'bob']}
    assert client.get('/api/annotators/bob/next').json()['progress'] == {
        'done': 0, 'total': 3, 'skipped': 1, 'mean_seconds': None,
    }  # fmt: skip
    assert client.get('/api/annotators/zoe/next').json()['progress']['total'] == 4
    for name in ['alice', 'bob']:
        while (view := client.get(f'/api/annotators/{name}/next').json())['stem']:
            assert submit(client, name, view['stem'], labels_of(STEMS.index(view['stem']))).status_code == 200
    summary = client.get('/api/admin/summary').json()
    assert summary['expected_voters'] == 2 and summary['complete'] == 1 and summary['labelled'] == 3
    (out / 'packages' / 'mallory.json').write_text('not json')  # after start-up: read when mallory comes
    response = client.get('/api/annotators/mallory/next')
    assert response.status_code == 409 and 'malformed package' in response.json()['detail']
    assert client_for(out).get('/api/annotators/mallory/next').status_code == 409


# ---------------------------------------------------------------------------------------------------- admin
def test_admin_statistics_and_browser(out, monkeypatch):
    clock = [1_700_000_000.0]
    monkeypatch.setattr(store_module, '_now', lambda: clock[0])
    client = client_for(out)
    votes = {
        'ann1': [labels_of(0), labels_of(1), labels_of(2), labels_of(3)],
        'ann2': [labels_of(0), labels_of(2), labels_of(2), labels_of(0)],
        'ann3': [labels_of(1), labels_of(1), labels_of(2)],  # one group short: 3 complete groups
    }
    for name, rows in votes.items():
        for stem, labels in zip(STEMS, rows):
            assert submit(client, name, stem, labels).status_code == 200
    summary = client.get('/api/admin/summary').json()
    assert summary['expected_voters'] == 3 and summary['complete'] == 3 and summary['labelled'] == 4
    gl = load_group_labels(out / 'labels', skip_bad_groups=True)
    complete = gl.subset(gl.votes[:, 0] >= 3)
    assert summary['statistics'] == label_statistics(complete)
    ann2 = next(a for a in summary['annotators'] if a['name'] == 'ann2')
    assert (
        ann2['done'] == 4
        and ann2['stats']['compared'] == 12
        and ann2['stats']['labels'][P] == sum(list(r.values()).count(P) for r in votes['ann2'])
    )
    page = client.get('/api/admin/groups?filter=complete&limit=2').json()
    assert page['total'] == 3 and [g['stem'] for g in page['groups']] == STEMS[:2]
    assert client.get('/api/admin/groups?filter=labelled').json()['total'] == 4
    assert client.get('/api/admin/groups?filter=pending').json()['total'] == 0
    detail = client.get(f'/api/admin/groups/{STEMS[3]}').json()
    assert detail['final'] == aggregate([labels_of(3), labels_of(0)])[0] and not detail['complete']
    assert sorted(detail['annotators']) == ['ann1', 'ann2'] and detail['images']['01'] == f'/api/images/{STEMS[3]}/01'
    row = client.get('/api/admin/groups?limit=1').json()['groups'][0]
    assert row['final'] == aggregate([labels_of(0), labels_of(0), labels_of(1)])[0]
    assert row['voters'] == ['ann1', 'ann2', 'ann3'] and row['status'] == 'complete'
    # progress is live; the statistics from the files are re-read at most every STATISTICS_SECONDS
    assert submit(client, 'ann3', STEMS[3], labels_of(5)).status_code == 200
    again = client.get('/api/admin/summary').json()
    assert again['complete'] == 4 and next(a for a in again['annotators'] if a['name'] == 'ann3')['done'] == 4
    assert again['statistics'] == summary['statistics'] and again['statistics_time'] == summary['statistics_time']
    clock[0] += store_module.STATISTICS_SECONDS + 1
    fresh = client.get('/api/admin/summary').json()
    assert (
        fresh['statistics'] == label_statistics(load_group_labels(out / 'labels'))
        and fresh['statistics']['groups'] == 4
    )


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_refusals_are_one_line(out, capsys, monkeypatch):
    monkeypatch.delenv('HGGT_ANNOTATE_TOKEN', raising=False)
    assert hggt_main(['annotate', '--root', str(out), '--host', '0.0.0.0']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and '--token' in err and '0.0.0.0' in err
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    try:
        assert hggt_main(['annotate', '--root', str(out), '--port', str(busy.getsockname()[1])]) == 2
        assert 'cannot listen' in capsys.readouterr().err
    finally:
        busy.close()
    assert hggt_main(['annotate', '--root', str(out.parent / 'nope'), '--port', '0']) == 2
    assert 'no such folder' in capsys.readouterr().err


def test_cli_serves_the_campaign(out, capsys, monkeypatch):
    monkeypatch.setenv('HGGT_ANNOTATE_TOKEN', 'tok')
    parser = argparse.ArgumentParser()
    annotate_cmd.add_arguments(parser)
    args = parser.parse_args(['--root', str(out), '--host', '0.0.0.0', '--port', '0', '--no-progress'])
    server, sock = annotate_cmd.make_server(args)
    printed = capsys.readouterr()
    assert 'WARNING' in printed.err and '0.0.0.0' in printed.err
    lines = printed.out.splitlines()
    assert lines[0].startswith('hggt annotate: 4 groups, K=4, 0 broken') and lines[-1].endswith('/admin?token=tok')
    thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f'http://127.0.0.1:{sock.getsockname()[1]}'
        assert httpx.get(f'{base}/api/config').status_code == 401
        assert httpx.get(f'{base}/api/config', headers={'Authorization': 'Bearer tok'}).json()['groups'] == 4
        assert httpx.get(f'{base}/admin?token=tok').status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


def test_clock_is_wall_time():
    assert abs(store_module._now() - time.time()) < 5
