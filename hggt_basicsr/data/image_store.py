"""Image storage backends of the HGGT datasets: a folder of PNGs (``disk``) or an lmdb of encoded images (``lmdb``).

Both return decoded BGR uint8 (H, W, 3) arrays (OpenCV's order; the datasets convert once to RGB float). Keys are
paths relative to the store root without the extension, e.g. ``original/0001-586-1469`` or ``03/0001-586-1469_03``.

The lmdb layout is basicsr's (``data.mdb``, ``lock.mdb``, ``meta_info.txt`` with ``<key> (h,w,c) <level>`` lines), so
basicsr's own tools read it too; :func:`make_lmdb` stores the encoded files as they are (no re-encoding), which
keeps decoding cost equal to the disk backend while avoiding one open() per image.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

from hggt_basicsr.errors import ConfigError, DataError

__all__ = ['IMAGE_EXTENSIONS', 'DiskStore', 'LmdbStore', 'build_store', 'make_lmdb']

_ENVS: dict[str, object] = {}  # lmdb path -> open read-only environment of this process

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def _decode_error(where: str, exists: bool) -> DataError:
    if not exists:
        return DataError(f'{where}: image file is missing')
    return DataError(f'{where}: unreadable or corrupt image (OpenCV could not decode it)')


class DiskStore:
    """Images in a folder tree; ``read(key)`` decodes ``<root>/<key><ext>``."""

    type = 'disk'

    def __init__(self, root: str, ext: str = '.png') -> None:
        self.root = root
        self.ext = ext

    def path(self, key: str) -> str:
        """The file of ``key``."""
        return os.path.join(self.root, key + self.ext)

    def folder_path(self, folder: str) -> str:
        """A readable name of ``folder`` for messages."""
        return os.path.join(self.root, folder)

    def keys_in(self, folder: str) -> set[str] | None:
        """Keys stored under ``folder`` (``None`` when the folder does not exist)."""
        full = os.path.join(self.root, folder)
        if not os.path.isdir(full):
            return None
        n = len(self.ext)
        prefix = f'{folder}/' if folder else ''
        with os.scandir(full) as it:
            return {prefix + e.name[:-n] for e in it if e.name.endswith(self.ext)}

    def read(self, key: str) -> np.ndarray:
        """Decoded BGR uint8 (H, W, 3); :class:`DataError` naming the file when missing or corrupt."""
        path = self.path(key)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise _decode_error(path, os.path.isfile(path))
        return img


class LmdbStore:
    """Encoded images in an lmdb (basicsr layout); the environment is opened lazily in each worker."""

    type = 'lmdb'

    def __init__(self, root: str) -> None:
        if not os.path.isfile(os.path.join(root, 'data.mdb')):
            raise DataError(f'{root}: not an lmdb folder (no data.mdb); build one with hggt_basicsr.data.make_lmdb')
        self.root = root
        self._env = None
        self._keys: set[str] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_env'] = None  # lmdb environments do not survive pickling / fork
        return state

    def _open(self):
        # One read-only environment per path and process (lmdb refuses to open a path twice in one process). A
        # forked DataLoader worker inherits its parent's entry; reading through it is safe because the environment
        # is read-only and opened with lock=False (no reader table, plain mmap reads).
        env = _ENVS.get(os.path.abspath(self.root))
        if env is None:
            import lmdb

            env = lmdb.open(self.root, readonly=True, lock=False, readahead=False, meminit=False, max_readers=256)
            _ENVS[os.path.abspath(self.root)] = env
        return env

    def all_keys(self) -> set[str]:
        """Every key of the store (from ``meta_info.txt`` if present, else by scanning the database)."""
        if self._keys is None:
            meta = os.path.join(self.root, 'meta_info.txt')
            if os.path.isfile(meta):
                with open(meta) as f:
                    self._keys = {line.split(' ', 1)[0] for line in f if line.strip()}
            else:
                with self._open().begin(write=False) as txn:
                    self._keys = {k.decode() for k in txn.cursor().iternext(keys=True, values=False)}
        return self._keys

    def path(self, key: str) -> str:
        """A readable name of ``key`` for messages."""
        return f'{self.root}:{key}'

    def folder_path(self, folder: str) -> str:
        """A readable name of ``folder`` for messages."""
        return f'{self.root}:{folder}/'

    def keys_in(self, folder: str) -> set[str] | None:
        """Keys under ``folder/`` (``None`` when there is none)."""
        if not folder:
            return {k for k in self.all_keys() if '/' not in k}
        prefix = folder + '/'
        keys = {k for k in self.all_keys() if k.startswith(prefix)}
        return keys or None

    def read(self, key: str) -> np.ndarray:
        """Decoded BGR uint8 (H, W, 3); :class:`DataError` naming the key when missing or corrupt."""
        if self._env is None:
            self._env = self._open()
        with self._env.begin(write=False) as txn:
            buf = txn.get(key.encode())
        if buf is None:
            raise _decode_error(self.path(key), False)
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise _decode_error(self.path(key), True)
        return img


def build_store(io_backend: Mapping | None, root: str, where: str, key: str = 'dataroot_gt') -> DiskStore | LmdbStore:
    """The store for ``io_backend`` (``{'type': 'disk'}`` or ``{'type': 'lmdb'}``) at ``root`` (option ``key``)."""
    io_backend = dict(io_backend or {'type': 'disk'})
    kind = io_backend.pop('type', 'disk')
    if kind == 'disk':
        if not os.path.isdir(root):
            raise DataError(f'{where}.{key}: no such image folder {root!r}')
        return DiskStore(root)
    if kind == 'lmdb':
        if not os.path.isdir(root):
            raise DataError(f'{where}.{key}: no such lmdb folder {root!r}')
        return LmdbStore(root)
    raise ConfigError(f"{where}.io_backend.type: unknown backend {kind!r}; expected 'disk' or 'lmdb'")


def _png_shape(buf: bytes) -> tuple[int, int, int] | None:
    if buf[:8] != b'\x89PNG\r\n\x1a\n' or buf[12:16] != b'IHDR':
        return None
    w, h = struct.unpack('>II', buf[16:24])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(buf[25], 3)
    return h, w, channels


def make_lmdb(
    src_root: str | os.PathLike,
    lmdb_path: str | os.PathLike,
    *,
    keys: Iterable[str] | None = None,
    progress: bool = False,
) -> int:
    """Pack a folder tree of images into an lmdb (encoded bytes stored as they are).

    Args:
        src_root: e.g. ``images/0-20193`` (keys ``original/<stem>``, ``01/<stem>_01``, ...) or a flat folder.
        lmdb_path: output folder (``<name>.lmdb``), created.
        keys: keys to store (relative paths without extension); default every image under ``src_root``.
        progress: tqdm progress bar.

    Returns:
        The number of images stored.
    """
    import lmdb

    src_root = Path(src_root)
    stale = _ENVS.pop(os.path.abspath(lmdb_path), None)
    if stale is not None:
        stale.close()
    if keys is None:
        files = sorted(p for p in src_root.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = []
        for key in keys:
            matches = [src_root / f'{key}{ext}' for ext in IMAGE_EXTENSIONS if (src_root / f'{key}{ext}').is_file()]
            if not matches:
                raise DataError(f'{src_root / key}: no image file for this key')
            files.append(matches[0])
    total = sum(p.stat().st_size for p in files)
    Path(lmdb_path).mkdir(parents=True, exist_ok=True)
    env = lmdb.open(os.fspath(lmdb_path), map_size=max(total * 2 + (64 << 20), 1 << 26))
    iterator: Iterable[Path] = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc='lmdb', unit='img')
    meta = []
    txn = env.begin(write=True)
    for i, path in enumerate(iterator):
        key = path.relative_to(src_root).with_suffix('').as_posix()
        buf = path.read_bytes()
        shape = _png_shape(buf)
        if shape is None:
            img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise DataError(f'{path}: unreadable or corrupt image')
            shape = (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])
        txn.put(key.encode(), buf)
        meta.append(f'{key} ({shape[0]},{shape[1]},{shape[2]}) 1\n')
        if (i + 1) % 5000 == 0:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
    Path(lmdb_path, 'meta_info.txt').write_text(''.join(meta))
    return len(files)
