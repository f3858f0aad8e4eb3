"""Which files ingestion may read and what they are called: everything below one docs root, ids
relative to it whichever folder is named, links out of the root skipped, folders compared by
their parts. Real folders and symlinks under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.rag.documents import Skipped
from kit.rag.paths import OUTSIDE_ROOT, DocsRoot, OutsideDocsRootError, discover, inside


def write(path: Path, content: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def found(paths: list[Path], root: DocsRoot) -> list[str | Skipped]:
    """What discover yields, files as their ids (root-relative), skips as they are."""
    return [
        item if isinstance(item, Skipped) else root.id_of(item) for item in discover(paths, root)
    ]


@pytest.fixture
def root(tmp_path: Path) -> DocsRoot:
    (tmp_path / "docs").mkdir()
    return DocsRoot.at(tmp_path / "docs")


def test_folders_are_walked_in_name_order_without_hidden_entries(root: DocsRoot) -> None:
    for name in ("b.md", "a/z.md", "a/b/c.txt", ".git/config", "a/.draft.md", ".env"):
        write(root.path / name)

    assert found([root.path], root) == ["a/b/c.txt", "a/z.md", "b.md"]


def test_a_file_has_the_same_id_whichever_folder_is_named(root: DocsRoot) -> None:
    page = write(root.path / "guide" / "sub" / "page.md")

    from_root = found([root.path], root)
    from_subfolder = found([root.path / "guide" / "sub"], root)
    directly = found([page], root)

    assert from_root == from_subfolder == directly == ["guide/sub/page.md"]


def test_a_hidden_file_named_directly_is_read(root: DocsRoot) -> None:
    write(root.path / ".notes.md")

    assert found([root.path / ".notes.md"], root) == [".notes.md"]


@pytest.mark.parametrize("outside", ["elsewhere", "docs/../elsewhere", "docs2"])
def test_a_path_outside_the_root_is_refused_saying_how_to_fix_it(
    root: DocsRoot, tmp_path: Path, outside: str
) -> None:
    write(tmp_path / "elsewhere" / "secret.md")
    write(tmp_path / "docs2" / "page.md")  # shares the root's name as a prefix: still outside

    with pytest.raises(OutsideDocsRootError) as refused:
        list(discover([tmp_path / outside], root))

    assert "is outside KIT_DOCS_ROOT" in str(refused.value)
    assert "set KIT_DOCS_ROOT" in str(refused.value)


def test_every_path_is_checked_before_any_file_is_read(root: DocsRoot, tmp_path: Path) -> None:
    write(root.path / "page.md")

    walk = discover([root.path, tmp_path], root)

    with pytest.raises(OutsideDocsRootError):
        next(walk)  # the first path is fine, but nothing is yielded before all are checked


def test_a_path_that_does_not_exist_is_an_error(root: DocsRoot) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(discover([root.path / "typo"], root))


def test_a_symlink_to_a_file_outside_the_root_is_skipped_with_the_reason(
    root: DocsRoot, tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret.txt", "the database password")
    write(root.path / "page.md")
    (root.path / "notes.txt").symlink_to(secret)

    assert found([root.path], root) == [Skipped("notes.txt", OUTSIDE_ROOT), "page.md"]
    assert OUTSIDE_ROOT == "symlink to a path outside KIT_DOCS_ROOT"


def test_a_symlinked_folder_outside_the_root_is_skipped_not_walked(
    root: DocsRoot, tmp_path: Path
) -> None:
    write(tmp_path / "home" / ".ssh" / "id_ed25519")
    write(tmp_path / "home" / "diary.md")
    (root.path / "home").symlink_to(tmp_path / "home")

    assert found([root.path], root) == [Skipped("home", OUTSIDE_ROOT)]


def test_a_symlink_named_directly_that_leads_outside_is_refused(
    root: DocsRoot, tmp_path: Path
) -> None:
    (root.path / "link.txt").symlink_to(write(tmp_path / "secret.txt"))

    with pytest.raises(OutsideDocsRootError):
        list(discover([root.path / "link.txt"], root))


def test_links_that_stay_inside_are_followed_under_their_own_names(root: DocsRoot) -> None:
    write(root.path / "real" / "page.md")
    (root.path / "alias").symlink_to(root.path / "real")
    (root.path / "shortcut.md").symlink_to(root.path / "real" / "page.md")

    assert found([root.path], root) == ["alias/page.md", "real/page.md", "shortcut.md"]


def test_a_link_back_to_a_folder_above_it_is_skipped_as_a_loop(root: DocsRoot) -> None:
    write(root.path / "a" / "page.md")
    (root.path / "a" / "up").symlink_to(root.path)

    assert found([root.path], root) == [
        "a/page.md",
        Skipped("a/up", "symlink loop: it leads back to a folder above it"),
    ]


def test_a_broken_link_is_skipped(root: DocsRoot) -> None:
    (root.path / "dangling.md").symlink_to(root.path / "gone.md")
    (root.path / "self").symlink_to(root.path / "self")  # a link to itself: resolving loops

    assert found([root.path], root) == [
        Skipped("dangling.md", "broken symlink: its target does not exist"),
        Skipped("self", "broken symlink: its target does not exist"),
    ]


@pytest.mark.parametrize(
    ("path", "folder", "expected"),
    [
        ("docs/a.md", "docs", True),
        ("docs/sub/a.md", "docs", True),
        ("docs", "docs", True),  # a file named directly contains itself
        ("docs2/a.md", "docs", False),  # a shared prefix is not containment
        ("docs.md", "docs", False),
        ("other/docs/a.md", "docs", False),
        ("anything/at/all.md", ".", True),  # the root itself holds everything
    ],
)
def test_inside_compares_folders_part_by_part(path: str, folder: str, expected: bool) -> None:
    assert inside(path, folder) is expected
