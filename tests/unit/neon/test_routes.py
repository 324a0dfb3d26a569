"""Routes in Spin's syntax: parsing with errors that name the field, matching, the most specific route winning,
and ambiguous pairs found (checked against brute force over many paths)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neon.errors import InvalidManifest
from neon.routes import Route, ambiguous, best, parse_route


def r(text: str) -> Route:
    return parse_route(text, "spec.components[0].http.routes[0]")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hello", "must start with '/'"),
        ("/a/.../b", "'...' may only end a route"),
        ("/a//b", "empty segment"),
        ("/:1x", "not a valid ':name' segment"),
        ("/a/:x/:x", ":x is used twice"),
        ("/../etc", "segment '..' is not allowed"),
        ("/a b", "segment 'a b' is not allowed"),
        ("Example.com/a", "lowercase host name"),
        ("", "must be a route"),
        ("/" + "a" * 600, "at most 512"),
    ],
)
def test_malformed_routes_are_refused_naming_the_field(text: str, why: str) -> None:
    with pytest.raises(InvalidManifest, match=why) as err:
        r(text)
    assert err.value.attrs["field"] == "spec.components[0].http.routes[0]"


def test_matching() -> None:
    assert r("/hello").match("h", "/hello?x=1") and not r("/hello").match("h", "/hello/x")
    assert r("/users/:id").match("h", "/users/7") and not r("/users/:id").match("h", "/users/7/x")
    assert r("/static/...").match("h", "/static") and r("/static/...").match("h", "/static/a/b")
    assert not r("/static/...").match("h", "/staticx")
    assert r("/...").match("h", "/") and r("/").match("h", "/") and not r("/").match("h", "/a")
    assert r("api.example.com/v1/...").match("API.example.com:8080", "/v1/x")
    assert not r("api.example.com/v1/...").match("other.example.com", "/v1/x")


def test_the_most_specific_route_wins() -> None:
    table = [(r(t), t) for t in ("/...", "/a", "/a/:x", "/a/...", "/a/b", "x.io/...")]
    assert best(table, "h", "/") == "/..."
    assert best(table, "h", "/a") == "/a"
    assert best(table, "h", "/a/b") == "/a/b"
    assert best(table, "h", "/a/c") == "/a/:x"
    assert best(table, "h", "/a/c/d") == "/a/..."
    assert best(table, "x.io", "/a") == "x.io/..."
    assert best([(r("/a"), 1)], "h", "/b") is None


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        ("/a", "/a", True),
        ("/:x", "/:y", True),
        ("/a/:x", "/:y/b", True),
        ("/a/...", "/a/:x/...", False),
        ("/a", "/a/...", False),
        ("/...", "/a", False),
        ("/a", "/b", False),
        ("h.io/a", "/a", False),
        ("h.io/a", "h.io/a", True),
    ],
)
def test_ambiguous_pairs(a: str, b: str, clash: bool) -> None:
    assert ambiguous(r(a), r(b)) is clash and ambiguous(r(b), r(a)) is clash


SEGMENTS = ["a", "b", ":x", ":y", "..."]
PATHS = ["/" + "/".join(p) for n in range(4) for p in itertools.product("abc", repeat=n)]


@given(st.lists(st.sampled_from(SEGMENTS), max_size=3), st.lists(st.sampled_from(SEGMENTS), max_size=3))
def test_ambiguity_agrees_with_brute_force(sa: list[str], sb: list[str]) -> None:
    """Ambiguous exactly when some path matches both and, on every path both match, neither route is always
    the one chosen; checked against every path of up to three segments."""
    texts = []
    for segments in (sa, sb):
        if "..." in segments:
            segments = segments[: segments.index("...") + 1]
        if len(set(s for s in segments if s.startswith(":"))) != len([s for s in segments if s.startswith(":")]):
            return  # a name used twice is refused at parse
        texts.append("/" + "/".join(segments))
    a, b = r(texts[0]), r(texts[1])
    both = [p for p in PATHS if a.match("h", p) and b.match("h", p)]
    if not both:
        assert not ambiguous(a, b), (texts, "no common path")
        return
    if texts[0] == texts[1] or ambiguous(a, b):
        return  # refused at apply: nothing to choose between
    winners = {best([(a, "a"), (b, "b")], "h", p) for p in both}
    assert len(winners) == 1, (texts, "a route that is not ambiguous wins every common path")


@pytest.mark.parametrize(
    ("a", "b", "meet"),
    [
        ("/shop/...", "/shop/special", True),
        ("/shop/...", "/shopping", False),
        ("/api/:v/items", "/api/v1/:what", True),
        ("shop.io/x", "/x", True),
        ("shop.io/x", "blog.io/x", False),
        ("/a", "/a/b", False),
    ],
)
def test_overlapping_routes_of_different_applications(a: str, b: str, meet: bool) -> None:
    from neon.routes import overlaps

    assert overlaps(r(a), r(b)) is meet and overlaps(r(b), r(a)) is meet
