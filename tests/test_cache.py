from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne.cache import (
    CACHE_FILE_MESSAGE,
    CACHE_MISS_MESSAGE,
    CacheFileError,
    CacheMissError,
    RequestCache,
    canonical_args_json,
)
from pytest_delphyne.plain_data import NOT_PLAIN_DATA_MESSAGE, NotPlainDataError

ARGS = canonical_args_json({"args": [1], "kwargs": {}}, "the arguments")


def _never() -> Any:
    raise AssertionError("a replayed call must not be made")


def test_identical_calls_record_and_replay_in_order(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        recorded = [cache.call("m.f", ARGS, random.random) for _ in range(3)]
    assert len(set(recorded)) == 3
    with RequestCache(path, "replay") as cache:
        replayed = [cache.call("m.f", ARGS, _never) for _ in range(3)]
    assert replayed == recorded


def test_cache_file_content(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        cache.call("m.f", ARGS, lambda: {"text": "two\nlines\u2028é", "n": (1, 2)})
        cache.call("m.f", ARGS, lambda: None)
    text = path.read_text()
    seconds = [line.rsplit(": ", 1)[1][:-1] for line in text.splitlines()]
    assert text == (
        '- {"key": "m.f", "occurrence": 0, "args": {"args":[1],"kwargs":{}}, '
        '"answer": {"text": "two\\nlines\\u2028é", "n": [1, 2]}, '
        f'"seconds": {seconds[0]}}}\n'
        '- {"key": "m.f", "occurrence": 1, "args": {"args":[1],"kwargs":{}}, '
        f'"answer": null, "seconds": {seconds[1]}}}\n'
    )
    assert yaml.safe_load(text) == [
        {
            "key": "m.f",
            "occurrence": 0,
            "args": {"args": [1], "kwargs": {}},
            "answer": {"text": "two\nlines\u2028é", "n": [1, 2]},
            "seconds": float(seconds[0]),
        },
        {
            "key": "m.f",
            "occurrence": 1,
            "args": {"args": [1], "kwargs": {}},
            "answer": None,
            "seconds": float(seconds[1]),
        },
    ]


def test_cache_edited_into_block_yaml_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        first = cache.call("m.f", ARGS, random.random)
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text())))
    with RequestCache(path, "replay") as cache:
        assert cache.call("m.f", ARGS, _never) == first


def test_entry_without_its_keys_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    path.write_text("- key: m.f\n  occurrence: 0\n- {}\n")
    with pytest.raises(CacheFileError) as info:
        RequestCache(path, "read_write")
    assert str(info.value).startswith(f"{path}, line 1: entry 0 is not a cache entry")


def test_later_entry_without_its_keys_is_refused_naming_its_own_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.yaml"
    path.write_text(
        "- key: m.f\n  occurrence: 0\n  args: {}\n  answer: 1\n  seconds: 0.5\n- {}\n"
    )
    with pytest.raises(CacheFileError) as info:
        RequestCache(path, "replay")
    assert str(info.value).startswith(f"{path}, line 6: entry 1 is not a cache entry")


def test_non_ascii_key_is_written_as_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        cache.call("modèle.f", ARGS, lambda: 1)
    assert path.read_text().startswith('- {"key": "modèle.f", ')


def test_create_makes_the_missing_directories_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "configs" / "c1" / "cache.yaml"
    with RequestCache(path, "create") as cache:
        cache.call("m.f", ARGS, lambda: 1)
    with RequestCache(path, "replay") as cache:
        assert cache.call("m.f", ARGS, _never) == 1


def test_answer_is_returned_as_it_replays(tmp_path: Path) -> None:
    with RequestCache(tmp_path / "cache.yaml", "create") as cache:
        answer: object = cache.call("m.f", ARGS, lambda: (1, (2,)))
    assert answer == [1, [2]]


def test_replay_miss_names_the_call_and_its_arguments(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        cache.call("m.f", ARGS, random.random)
    other = canonical_args_json({"args": [2], "kwargs": {}}, "the arguments")
    with RequestCache(path, "replay") as cache:
        with pytest.raises(CacheMissError) as info:
            cache.call("m.f", other, _never)
        assert str(info.value) == CACHE_MISS_MESSAGE.format(
            path=path, key="m.f", args=other, occurrence=0
        )
        cache.call("m.f", ARGS, _never)
        with pytest.raises(CacheMissError, match="occurrence 1"):
            cache.call("m.f", ARGS, _never)


def test_replay_first_miss_live_makes_one_missing_call_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        first = cache.call("m.f", ARGS, random.random)
    text = path.read_bytes()
    other = canonical_args_json({"args": [2], "kwargs": {}}, "the arguments")
    made: list[str] = []

    def making(key: str) -> Callable[[], int]:
        def make() -> int:
            made.append(key)
            return 7

        return make

    with RequestCache(path, "replay_first_miss_live") as cache:
        assert cache.call("m.f", ARGS, _never) == first
        assert cache.call("m.g", ARGS, making("m.g")) == 7
        with pytest.raises(CacheMissError) as info:
            cache.call("m.f", other, making("m.f"))
        assert str(info.value) == CACHE_MISS_MESSAGE.format(
            path=path, key="m.f", args=other, occurrence=0
        )
        # The call made live is not recorded: asked again, it is another miss.
        with pytest.raises(CacheMissError, match="call m\\.g with"):
            cache.call("m.g", ARGS, making("m.g"))
        assert len(cache) == 1
    assert made == ["m.g"]
    assert path.read_bytes() == text


def test_replay_modes_refuse_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CacheFileError, match="no such cache file to replay"):
        RequestCache(tmp_path / "cache.yaml", "replay_first_miss_live")
    assert list(tmp_path.iterdir()) == []


def test_create_starts_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        cache.call("m.f", ARGS, lambda: 1)
    with RequestCache(path, "create") as cache:
        assert len(cache) == 0
    assert path.read_text() == ""


def test_read_write_reuses_then_records(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    with RequestCache(path, "create") as cache:
        first = cache.call("m.f", ARGS, random.random)
    with RequestCache(path, "read_write") as cache:
        assert cache.call("m.f", ARGS, _never) == first
        second = cache.call("m.f", ARGS, random.random)
    with RequestCache(path, "replay") as cache:
        assert [cache.call("m.f", ARGS, _never) for _ in range(2)] == [first, second]


def test_off_writes_nothing(tmp_path: Path) -> None:
    with RequestCache(None, "off") as cache:
        assert cache.call("m.f", ARGS, lambda: 1) == 1
        assert cache.call("m.f", ARGS, lambda: 2) == 2
    assert list(tmp_path.iterdir()) == []


def test_off_with_a_path_neither_reads_nor_writes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    recorded = _three_entries(path)
    with RequestCache(path, "off") as cache:
        assert len(cache) == 0
        assert cache.call("m.f", ARGS, lambda: "live") == "live"
    assert path.read_text() == recorded


def test_entry_seconds_is_how_long_the_call_took(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    before = time.perf_counter()
    with RequestCache(path, "create") as cache:
        cache.call("m.f", ARGS, lambda: time.sleep(0.01))
    elapsed = time.perf_counter() - before
    (entry,) = yaml.safe_load(path.read_text())
    assert 0.01 <= entry["seconds"] <= elapsed


def test_flow_style_cache_with_a_bad_entry_is_refused_at_line_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.yaml"
    path.write_text("[{key: m.f}]\n")
    with pytest.raises(CacheFileError) as info:
        RequestCache(path, "replay")
    assert str(info.value).startswith(f"{path}, line 1: entry 0 is not a cache entry")


def _three_entries(path: Path) -> str:
    with RequestCache(path, "create") as cache:
        for value in ("a", "b", "c"):
            cache.call("m.f", ARGS, lambda value=value: value)  # type: ignore[misc]
    return path.read_text()


@pytest.mark.parametrize("cut", ["mid-line", "line end", "before seconds"])
def test_read_write_drops_a_torn_last_entry(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "cache.yaml"
    text = _three_entries(path)
    last = text.rindex("\n- ") + 1
    entry = text[last:]
    at = {
        "mid-line": 3,
        "line end": len(entry) - 1,
        "before seconds": entry.index('"seconds"'),
    }
    path.write_text(text[: last + at[cut]])
    with RequestCache(path, "read_write") as cache:
        assert len(cache) == 2
        assert [cache.call("m.f", ARGS, lambda: "new") for _ in range(3)] == [
            "a",
            "b",
            "new",
        ]
    with RequestCache(path, "replay") as cache:
        assert [cache.call("m.f", ARGS, _never) for _ in range(3)] == ["a", "b", "new"]


def test_replay_refuses_a_torn_last_entry_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cache.yaml"
    text = _three_entries(path)
    last = text.rindex("\n- ") + 1
    path.write_text(text[: last + 20])
    line = 3
    with pytest.raises(CacheFileError) as info:
        RequestCache(path, "replay")
    assert str(info.value) == CACHE_FILE_MESSAGE.format(
        path=path, line=line, problem="the last entry is cut short"
    )


def test_corrupt_entry_in_the_middle_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.yaml"
    text = _three_entries(path)
    corrupt = text.replace('"occurrence": 1,', '"occurrence": [1,')
    path.write_text(corrupt)
    with pytest.raises(CacheFileError, match=rf"^{path}, line 2: corrupt YAML"):
        RequestCache(path, "read_write")
    # Left as it was: the entries after the corrupt one are not cut off.
    assert path.read_text() == corrupt


def test_non_plain_answer_is_refused(tmp_path: Path) -> None:
    with (
        RequestCache(tmp_path / "cache.yaml", "create") as cache,
        pytest.raises(NotPlainDataError) as info,
    ):
        cache.call("m.f", ARGS, lambda: {"x": [object()]})
    assert str(info.value) == NOT_PLAIN_DATA_MESSAGE.format(
        what="the answer of call m.f", path="['x'][0]", type_name="a object"
    )
    assert (tmp_path / "cache.yaml").read_text() == ""


def test_missing_file_cannot_be_replayed(tmp_path: Path) -> None:
    with pytest.raises(CacheFileError, match="no such cache file"):
        RequestCache(tmp_path / "cache.yaml", "replay")
