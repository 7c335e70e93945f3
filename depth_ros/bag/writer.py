"""Write a rosbag2 storage file (``.mcap`` or ``.db3``) atomically.

The bag is written into a temporary directory next to the target (same file system), and the
finished storage file is moved over the target name with :func:`os.replace` only when writing
succeeded. On any failure (an exception, Ctrl-C, SIGTERM turned into ``SystemExit``) the
temporary directory is removed and nothing appears under the target name.

The file written is a self-contained rosbag2 storage file: message definitions are embedded
(MCAP schemas in ``ros2msg`` encoding, the sqlite3 ``message_definitions`` table) so Foxglove,
``ros2 bag`` and rosbags read it without further files.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from depth_ros.errors import BagError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

__all__ = ["BagWriter", "STORAGE_SUFFIXES", "check_output_path"]

_log = logging.getLogger(__name__)

STORAGE_SUFFIXES = (".mcap", ".db3")
_TMP_PREFIX = ".depth_ros-tmp-"


def check_output_path(path: str | Path, *, overwrite: bool = False) -> Path:
    """Validate an output bag path before any work is done.

    Args:
        path: target storage file, ending in ``.mcap`` or ``.db3``.
        overwrite: allow replacing an existing *file* (never a directory).

    Returns:
        The path as a :class:`Path`.

    Raises:
        BagError: wrong suffix, the parent directory does not exist, the target exists and
            ``overwrite`` is false, or the target is a directory.
    """
    path = Path(path)
    if path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"output bag {path} must end in one of {', '.join(STORAGE_SUFFIXES)}")
    if not path.parent.is_dir():
        raise BagError(f"output directory {path.parent} does not exist")
    if path.is_dir():
        raise BagError(f"output {path} is a directory; give a file name ending in {path.suffix}")
    if path.exists() and not overwrite:
        raise BagError(f"output {path} exists (use --overwrite to replace it)")
    return path


class BagWriter:
    """A rosbag2 storage file written atomically; use as a context manager.

    Example::

        with BagWriter("out.mcap", typestore=ts) as bag:
            bag.add_topic("/cam/depth/image", "sensor_msgs/msg/Image")
            bag.write("/cam/depth/image", msg, stamp_ns)
        # out.mcap exists only now, complete.

    Args:
        path: target file, ``.mcap`` (MCAP storage) or ``.db3`` (sqlite3 storage).
        typestore: serialises messages given to :meth:`write` and provides definitions.
        overwrite: replace an existing target file (only once the new one is complete).
        compression: ``None`` or ``"zstd"`` (MCAP chunk / sqlite3 message compression).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        typestore: "Typestore",
        overwrite: bool = False,
        compression: str | None = None,
    ) -> None:
        if compression not in (None, "zstd"):
            raise ValueError(f"compression must be None or 'zstd', got {compression!r}")
        self.path = check_output_path(path, overwrite=overwrite)
        self.overwrite = overwrite
        self.typestore = typestore
        self.compression = compression
        self._tmpdir: Path | None = None
        self._writer: "Writer | None" = None
        self._connections: dict[str, tuple["Connection", str]] = {}
        self.message_counts: dict[str, int] = {}
        self.bytes_written = 0

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> "BagWriter":
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        if self._writer is not None:
            raise BagError(f"{self.path}: writer already open")
        self._tmpdir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.path.parent))
        plugin = StoragePlugin.MCAP if self.path.suffix == ".mcap" else StoragePlugin.SQLITE3
        try:
            writer = Writer(self._tmpdir / "bag", version=Writer.VERSION_LATEST, storage_plugin=plugin)
            if self.compression == "zstd":
                mode = CompressionMode.STORAGE if plugin == StoragePlugin.MCAP else CompressionMode.MESSAGE
                writer.set_compression(mode, CompressionFormat.ZSTD)
            writer.open()
        except BaseException as exc:
            self._remove_tmpdir()
            if isinstance(exc, Exception):
                raise BagError(f"{self.path}: cannot start writing ({exc})") from None
            raise
        self._writer = writer
        return self

    def commit(self) -> Path:
        """Finish the file and move it over the target name. Returns the target path."""
        writer, self._writer = self._writer, None
        if writer is None:
            raise BagError(f"{self.path}: writer is not open")
        try:
            writer.close()
            files = [p for p in writer.path.iterdir() if p.suffix in STORAGE_SUFFIXES]
            if len(files) != 1:
                raise BagError(f"{self.path}: expected one storage file in {writer.path}, found {files}")
            if self.path.exists() and not self.overwrite:
                # Created by someone else while we were writing: do not clobber it.
                raise BagError(f"output {self.path} appeared while writing; not replacing it")
            os.replace(files[0], self.path)
        except BaseException as exc:
            self._remove_tmpdir()
            if isinstance(exc, OSError):
                raise BagError(f"{self.path}: cannot finish writing ({exc})") from None
            raise
        self._remove_tmpdir()
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the target is left as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.abort()
            except Exception as exc:  # the temp dir is removed next anyway
                _log.debug("aborting the bag writer failed: %s", exc)
        self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- topics and messages -------------------------------------------------------------
    def add_topic(
        self,
        topic: str,
        msgtype: str,
        *,
        typestore: "Typestore | None" = None,
    ) -> None:
        """Declare a topic. ``typestore`` (default: the writer's) provides its definition.

        Pass the *reader's* typestore for topics copied as raw bytes from another bag, so the
        definition written is the one the bytes were serialised with.
        """
        writer = self._require_open()
        if topic in self._connections:
            have = self._connections[topic][1]
            if have != msgtype:
                raise BagError(f"{self.path}: topic {topic} already declared as {have}, not {msgtype}")
            return
        try:
            connection = writer.add_connection(topic, msgtype, typestore=typestore or self.typestore)
        except Exception as exc:  # WriterError, or a type unknown to the typestore
            raise BagError(f"{self.path}: cannot add topic {topic} ({msgtype}): {exc}") from None
        self._connections[topic] = (connection, msgtype)
        self.message_counts[topic] = 0

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Serialise ``msg`` (a typestore message of the topic's type) and write it.

        Args:
            topic: a topic declared with :meth:`add_topic`.
            msg: message object of the writer's typestore.
            stamp_ns: the record's log time in nanoseconds (use the header stamp: a bag
                written offline has no better receive time).
        """
        connection, msgtype = self._connection(topic)
        self.write_raw(topic, self.typestore.serialize_cdr(msg, msgtype), stamp_ns)

    def write_raw(self, topic: str, data: bytes | memoryview, stamp_ns: int) -> None:
        """Write already serialised CDR bytes of the topic's type."""
        writer = self._require_open()
        connection, _ = self._connection(topic)
        try:
            writer.write(connection, int(stamp_ns), data)
        except OSError as exc:
            raise BagError(f"{self.path}: write failed on {topic} ({exc})") from None
        self.message_counts[topic] += 1
        self.bytes_written += len(data)

    def _connection(self, topic: str) -> tuple["Connection", str]:
        try:
            return self._connections[topic]
        except KeyError:
            raise BagError(f"{self.path}: topic {topic} was not declared with add_topic") from None

    def _require_open(self) -> "Writer":
        if self._writer is None:
            raise BagError(f"{self.path}: writer is not open")
        return self._writer
