"""Cache keys: the same logical request gives the same key, any answer-changing part a new one."""

import json
from fnmatch import fnmatchcase

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenfold_runtime.cache import batch, keys
from tenfold_runtime.cache.manifest import ModelIdentity

IDENTITY = ModelIdentity("embed", "sha256:aa", "1", "fp16", "0.1.0")
SERVICE = keys.ServiceRef("team-a", "embed")
SPACE = keys.space(SERVICE, IDENTITY)


def request(data=None, outputs=None, parameters=None, **extra) -> dict:
    """A one-input FP32 request."""
    doc = {
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [2, 2], "data": data or [1, 2, 3, 4]}
        ],
        **extra,
    }
    if outputs is not None:
        doc["outputs"] = outputs
    if parameters is not None:
        doc["parameters"] = parameters
    return doc


def key_of(doc: dict, space: str = SPACE, tail: bytes = b"", accept: str = "") -> str:
    return keys.request_key(space, "", doc, tail, accept)


def test_same_logical_request_same_key():
    plain = request([1, 2, 3, 4], outputs=[{"name": "A"}, {"name": "B"}])
    respelled = json.loads(
        '{"outputs": [{"name": "B"}, {"name": "A"}],'
        ' "inputs": [{"shape": [2, 2], "data": [[1.0, 2.0], [3.0, 4.0]],'
        ' "datatype": "FP32", "name": "X"}]}'
    )
    assert key_of(plain) == key_of(respelled)


def test_input_order_does_not_matter():
    a = {"name": "A", "datatype": "INT32", "shape": [1], "data": [1]}
    b = {"name": "B", "datatype": "INT32", "shape": [1], "data": [2]}
    assert key_of({"inputs": [a, b]}) == key_of({"inputs": [b, a]})


@pytest.mark.parametrize(
    "changed",
    [
        request([1, 2, 3, 5]),
        request(outputs=[{"name": "A"}]),
        request(outputs=[{"name": "A", "parameters": {"binary_data": True}}]),
        request(parameters={"priority": 1}),
        request(id="req-7"),
    ],
)
def test_answer_changing_parts_change_the_key(changed):
    assert key_of(changed) != key_of(request())


@pytest.mark.parametrize(
    "field, value",
    [
        ("digest", "sha256:bb"),
        ("precision", "int8"),
        ("version", "2"),
        ("runtime_version", "0.2"),
        ("spec_digest", "sha256:ss"),
    ],
)
def test_model_identity_changes_the_space(field, value):
    other = ModelIdentity(**{**IDENTITY.__dict__, field: value})
    assert keys.space(SERVICE, other) != SPACE
    assert keys.space(SERVICE, other).startswith(keys.family(SERVICE))
    assert key_of(request(), keys.space(SERVICE, other)) != key_of(request())


def test_key_names_namespace_service_model_and_build():
    assert SPACE.startswith("tenfold:cache:team-a/embed:embed:")
    assert key_of(request()).startswith(SPACE + "r:")


@pytest.mark.parametrize(
    "other",
    [
        keys.ServiceRef("team-b", "embed"),  # another team's service of the same name
        keys.ServiceRef("team-a", "embed-2"),  # a longer name in the same namespace
        keys.ServiceRef("team", "a-embed"),  # the same characters, split elsewhere
    ],
)
def test_the_same_build_in_another_service_gets_other_keys(other):
    """Two services serving the very same model build share no key."""
    assert keys.space(other, IDENTITY) != SPACE
    assert key_of(request(), keys.space(other, IDENTITY)) != key_of(request())
    assert not keys.space(other, IDENTITY).startswith(keys.family(SERVICE))
    assert not SPACE.startswith(keys.family(other))


def test_clean_up_pattern_matches_only_the_services_own_builds():
    """The MATCH pattern a sidecar scans with at start (then it keeps its own space).

    Kubernetes names hold no glob character or backslash, so fnmatch reads this pattern
    as Redis does; the e2e test runs the same clean-up against a real Redis.
    """
    pattern = keys.family_pattern(keys.family(SERVICE))
    old_build = ModelIdentity("embed", "sha256:00", "1", "fp32", "0.0.9")
    renamed_model = ModelIdentity("minilm", "sha256:aa", "1", "fp16", "0.1.0")
    own = [key_of(request(), keys.space(SERVICE, i)) for i in (IDENTITY, old_build, renamed_model)]
    others = [
        key_of(request(), keys.space(keys.ServiceRef(ns, name), IDENTITY))
        for ns, name in (("team-b", "embed"), ("team-a", "embed-2"), ("team-a", "other"))
    ]
    legacy = "tenfold:cache:embed:0123456789abcdef01234567:r:" + "0" * 64  # before services
    assert all(fnmatchcase(key, pattern) for key in own)
    assert not any(fnmatchcase(key, pattern) for key in [*others, legacy])


def test_accept_encoding_and_url_version_change_the_key():
    assert key_of(request(), accept="gzip") != key_of(request())
    assert keys.request_key(SPACE, "2", request(), b"", "") != key_of(request())


def test_binary_input_is_keyed_by_its_bytes():
    doc = {
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}
        ]
    }
    one = key_of(doc, tail=b"\x00\x00\x80?")
    assert one != key_of(doc, tail=b"\x00\x00\x00@")
    with pytest.raises(keys.NotCacheableError):
        key_of(doc, tail=b"\x00\x00\x80?extra")


@pytest.mark.parametrize(
    "doc",
    [
        request(parameters={"sequence_id": 3}),
        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1],
                     "parameters": {"shared_memory_region": "r"}}]},
        {"inputs": [{"name": "X", "datatype": "INT32", "shape": [1], "data": [1.5]}]},
        {"inputs": [{"name": "X", "datatype": "BF16", "shape": [1], "data": [1.0]}]},
        {"inputs": []},
    ],
)  # fmt: skip
def test_unsafe_requests_are_not_cacheable(doc):
    with pytest.raises(keys.NotCacheableError):
        key_of(doc)


def test_bytes_tensor_uses_tritons_layout():
    assert keys.tensor_bytes("BYTES", [["ab"], ["c"]]) == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


def test_split_body_binary_extension():
    header = b'{"inputs":[]}'
    doc, tail = keys.split_body(header + b"RAW", str(len(header)))
    assert doc == {"inputs": []} and tail == b"RAW"


def test_glob_escape():
    assert keys.glob_escape("a*b?[c]") == "a\\*b\\?\\[c\\]"


def test_item_key_depends_on_text_and_parameters():
    base = keys.item_key(SPACE, "", "TEXT->EMBEDDING", "hello", {})
    assert base == keys.item_key(SPACE, "", "TEXT->EMBEDDING", "hello", {})
    assert base != keys.item_key(SPACE, "", "TEXT->EMBEDDING", "hello!", {})
    assert base != keys.item_key(SPACE, "", "TEXT->EMBEDDING", "hello", {"priority": 1})
    assert base.startswith(SPACE)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1))
def test_nested_and_flat_float_data_key_alike(values):
    flat = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [len(values)], "data": values}]}
    nested = {"inputs": [{**flat["inputs"][0], "data": [[v] for v in values]}]}
    assert key_of(flat) == key_of(nested)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": JSON,
                        "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL"]) | JSON,
                        "shape": JSON,
                        "data": JSON,
                        "parameters": JSON,
                    },
                )
                | JSON,
                max_size=3,
            ),
            "outputs": JSON,
            "parameters": JSON,
            "id": JSON,
        },
    ),
    st.binary(max_size=8),
)
# Generating these nested documents is slow on a busy 2-core machine; slowness is no bug here.
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_request_is_keyed_or_refused_never_crashes(doc, tail):
    batch.parse_item_request(doc)  # None or a request, never an exception
    try:
        assert key_of(doc, tail=tail).startswith(SPACE)
    except keys.NotCacheableError:
        pass
