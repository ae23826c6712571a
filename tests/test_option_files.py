"""Every command that reads an option file reports a bad one the same way: one line naming the flag or the file."""

from __future__ import annotations

import pytest

from hggt_basicsr.cli.hggt import main as hggt_main


@pytest.mark.parametrize(
    ('argv', 'flag'),
    [
        (['infer', '--input', 'in', '--output', 'out', '-opt'], '-opt'),
        (['enhance', '--config'], '--config'),
        (['make-lq', 'root', '-o', 'out', '--opt'], '--opt'),
    ],
)
def test_bad_option_files_are_one_line(tmp_path, capsys, argv, flag):
    missing = tmp_path / 'missing.yml'
    assert hggt_main([*argv, str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{flag}: option file {str(missing)!r} does not exist' in err

    broken = tmp_path / 'broken.yml'
    broken.write_text('a: 1\nb: [2, 3\n')
    assert hggt_main([*argv, str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{broken}: line 3, column 1: YAML syntax error' in err

    listed = tmp_path / 'list.yml'
    listed.write_text('- 1\n- 2\n')
    assert hggt_main([*argv, str(listed)]) == 2
    assert 'expected a mapping of options at the top level, got list' in capsys.readouterr().err
