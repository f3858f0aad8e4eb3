"""Where documents may be read from: one docs root (KIT_DOCS_ROOT), ids relative to it, the walk.

    KIT_DOCS_ROOT=data
    kit ingest data/fastapi-docs/docs            ids: fastapi-docs/docs/tutorial/body.md, ...
    kit ingest data/fastapi-docs/docs/tutorial   the same ids for the same files

A document's id is its file's path below the root, whichever folder was named, so ingesting a
subfolder can neither overwrite nor (with --prune) delete a document that lives elsewhere, and
`inside` compares paths by their parts, never as strings ("docs2/a.md" is not inside "docs").
Nothing outside the root is read: a named path outside it is refused (`OutsideDocsRootError`),
and a symlink below it whose target lies outside is skipped with that reason, so a link cannot
carry /etc/passwd or a secret into the index. Links that stay inside are followed; one that
leads back to a folder it sits in (a loop) is skipped.

This module knows paths only: file formats are loaders.py's job, the collection is index.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kit.core.errors import ConfigError
from kit.rag.documents import Skipped

OUTSIDE_ROOT = "symlink to a path outside KIT_DOCS_ROOT"


class OutsideDocsRootError(ConfigError):
    """A path named for ingestion lies outside KIT_DOCS_ROOT, or leads there through a link."""


@dataclass(frozen=True)
class DocsRoot:
    """The folder every document id is relative to. `path` is absolute, links resolved."""

    path: Path

    @classmethod
    def at(cls, folder: Path) -> DocsRoot:
        """The root at `folder` (relative: to the working directory), e.g. KIT_DOCS_ROOT."""
        return cls(folder.expanduser().resolve())

    def locate(self, path: Path) -> Path:
        """`path` with links resolved, if it lies below the root; else an error saying how to fix
        it. Resolving first means `root/../etc` and a link that points out are both outside."""
        resolved = path.expanduser().resolve()
        if not resolved.is_relative_to(self.path):
            raise OutsideDocsRootError(
                f"{path} is outside KIT_DOCS_ROOT ({self.path}). A document's id is its path "
                "below that folder, so only files below it can be ingested: set KIT_DOCS_ROOT "
                f"(in .env or the environment) to a folder that contains {path}, or move the "
                "files below it."
            )
        return resolved

    def id_of(self, path: Path) -> str:
        """The root-relative name of a path found below the root, with "/" on any OS:
        "fastapi-docs/docs/tutorial/body.md" (and "." for the root itself)."""
        return path.relative_to(self.path).as_posix()


def inside(path: str, folder: str) -> bool:
    """Whether the root-relative `path` lies in `folder` (or is it), part by part:
    inside("docs/a.md", "docs") is True, inside("docs2/a.md", "docs") is False."""
    return PurePosixPath(path).is_relative_to(PurePosixPath(folder))


def discover(paths: Iterable[Path], root: DocsRoot) -> Iterator[Path | Skipped]:
    """Yield every file under `paths` (each below `root`), in a stable order, or a `Skipped`
    saying why an entry was left out (a link out of the root, a loop, a dangling link).

    A folder is walked recursively, in name order, skipping hidden entries (".git", ".env"). A
    file named directly is yielded even if hidden. Every path yielded is below `root.path`
    (give it to `load_file` with that root). A named path outside the root raises
    `OutsideDocsRootError`, and one that does not exist FileNotFoundError: both are mistakes on
    the command line, not bad input files, so they stop the run before anything is read.
    """
    located = [(path, root.locate(path)) for path in paths]  # all checked before any is read
    for named, path in located:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from _walk(path, root, frozenset({path}))
        else:
            raise FileNotFoundError(f"{named} does not exist")


def _walk(folder: Path, root: DocsRoot, ancestors: frozenset[Path]) -> Iterator[Path | Skipped]:
    """`ancestors`: the real (resolved) folders on the way down, to recognise a loop."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:  # no permission to list it: the rest of the walk goes on
        yield Skipped(root.id_of(folder), f"cannot read the folder ({error.strerror})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_symlink():
            if entry.is_dir():
                yield from _walk(entry, root, ancestors | {entry.resolve()})
            elif entry.is_file():  # not a socket, a FIFO or a device
                yield entry
            continue
        try:
            target = entry.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a link that points at itself
            yield Skipped(root.id_of(entry), "broken symlink: its target does not exist")
            continue
        if not target.is_relative_to(root.path):
            # The id is the link's own name: the report never says where outside it pointed.
            yield Skipped(root.id_of(entry), OUTSIDE_ROOT)
        elif target.is_dir() and target in ancestors:
            yield Skipped(root.id_of(entry), "symlink loop: it leads back to a folder above it")
        elif target.is_dir():
            yield from _walk(entry, root, ancestors | {target})
        elif target.is_file():
            yield entry  # read through the link; its id is the link's path, below the root
