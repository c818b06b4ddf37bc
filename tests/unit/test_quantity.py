"""Kubernetes quantities to integers and back (extender.core.quantity)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from extender.core.quantity import QuantityError, human_bytes, parse, to_bytes, to_millicores

Ki, Mi, Gi, Ti = 2**10, 2**20, 2**30, 2**40


@pytest.mark.parametrize("text, value", [
    pytest.param("512Mi", 512 * Mi, id="binary-mebi"),
    pytest.param("8Gi", 8 * Gi, id="binary-gibi"),
    pytest.param("1Ki", Ki, id="binary-kibi"),
    pytest.param("2Ti", 2 * Ti, id="binary-tebi"),
    pytest.param("1Pi", 2**50, id="binary-pebi"),
    pytest.param("1Ei", 2**60, id="binary-exbi"),
    pytest.param("1k", 1000, id="decimal-kilo"),
    pytest.param("1.5G", 1_500_000_000, id="decimal-giga-with-fraction"),
    pytest.param("3M", 3_000_000, id="decimal-mega"),
    pytest.param("1T", 10**12, id="decimal-tera"),
    pytest.param("1P", 10**15, id="decimal-peta"),
    pytest.param("1E", 10**18, id="capital-E-is-exa-not-an-exponent"),
    pytest.param("1e3", 1000, id="exponent-notation"),
    pytest.param("12E-1", Decimal("1.2"), id="exponent-with-sign"),
    pytest.param("1073741824", Gi, id="plain-bytes"),
    pytest.param(" 64Mi ", 64 * Mi, id="surrounding-space"),
    pytest.param("+1Ki", Ki, id="explicit-plus"),
    pytest.param("-1Ki", -Ki, id="negative"),
    pytest.param("0.5Gi", Gi // 2, id="fraction-of-binary"),
    pytest.param(1024, 1024, id="json-integer"),
    pytest.param(0.25, Decimal("0.25"), id="json-float"),
])
def test_parse(text, value):
    assert parse(text) == value


@pytest.mark.parametrize("text, millicores", [
    pytest.param("250m", 250, id="millicores"),
    pytest.param("2", 2000, id="whole-cores"),
    pytest.param("0.1", 100, id="fraction-of-a-core"),
    pytest.param("1.5", 1500, id="core-and-a-half"),
    pytest.param(3, 3000, id="json-integer"),
    pytest.param("500000u", 500, id="micro"),
    pytest.param("100000000n", 100, id="nano"),
])
def test_to_millicores(text, millicores):
    assert to_millicores(text) == millicores
    assert type(to_millicores(text)) is int


@pytest.mark.parametrize("text, nbytes", [
    pytest.param("64Mi", 64 * Mi, id="mebi"),
    pytest.param("1.5Gi", Gi + Gi // 2, id="fraction-of-gibi-exact"),
    pytest.param("1G", 10**9, id="decimal"),
])
def test_to_bytes(text, nbytes):
    assert to_bytes(text) == nbytes
    assert type(to_bytes(text)) is int


@pytest.mark.parametrize("convert, text, expected", [
    pytest.param(to_bytes, "1.5", 2, id="bytes-1.5-rounds-up-to-2"),
    pytest.param(to_bytes, "0.5", 1, id="bytes-0.5-rounds-up-to-1"),
    pytest.param(to_bytes, "1500m", 2, id="bytes-1500m-rounds-up-to-2"),
    pytest.param(to_millicores, "1.5m", 2, id="one-and-a-half-millicores-rounds-up-to-2"),
    pytest.param(to_millicores, "0.0005", 1, id="half-a-millicore-rounds-up-to-1"),
    pytest.param(to_millicores, "1.0001", 1001, id="cpu-1.0001-rounds-up-to-1001m"),
    pytest.param(to_millicores, "1u", 1, id="one-microcore-rounds-up-to-1m"),
])
def test_fractional_quantities_round_up(convert, text, expected):
    assert convert(text) == expected


@pytest.mark.parametrize("value", [
    pytest.param("", id="empty"),
    pytest.param("lots", id="words"),
    pytest.param("12Q", id="unknown-suffix"),
    pytest.param("1.2.3", id="two-dots"),
    pytest.param(".", id="just-a-dot"),
    pytest.param("Mi", id="suffix-without-number"),
    pytest.param("1 Gi", id="space-inside"),
    pytest.param("1gi", id="wrong-case-suffix"),
    pytest.param(None, id="null"),
    pytest.param(True, id="boolean"),
    pytest.param(["1Gi"], id="list"),
])
def test_not_a_quantity_raises_quantity_error(value):
    with pytest.raises(QuantityError, match="not a quantity"):
        parse(value)
    with pytest.raises(QuantityError):
        to_bytes(value)


def test_quantity_error_is_a_value_error():
    assert issubclass(QuantityError, ValueError)


@pytest.mark.parametrize("value, text", [
    pytest.param(None, "unknown", id="unknown"),
    pytest.param(0, "0", id="zero"),
    pytest.param(1023, "1023", id="below-a-kibibyte-plain"),
    pytest.param(Ki, "1Ki", id="kibi"),
    pytest.param(512 * Mi, "512Mi", id="mebi"),
    pytest.param(Gi + Gi // 2, "1.5Gi", id="fraction-one-decimal"),
    pytest.param(8 * Gi, "8Gi", id="no-trailing-zero"),
    pytest.param(3 * Ti, "3Ti", id="tebi"),
    pytest.param(-512 * Mi, "-512Mi", id="negative-headroom"),
])
def test_human_bytes(value, text):
    assert human_bytes(value) == text


@pytest.mark.parametrize("text", ["64Mi", "1Gi", "1.5Gi", "512Ki", "2Ti"])
def test_human_bytes_round_trips_common_requests(text):
    assert human_bytes(to_bytes(text)) == text


# --- bounded work: issue 11 ----------------------------------------------------------------

@pytest.mark.parametrize("value", [
    pytest.param("1e999999", id="huge-exponent"), pytest.param("1e200000", id="large-exponent"),
    pytest.param("1e20", id="over-int64-bytes"), pytest.param("8Ei", id="binary-over-int64"),
    pytest.param(2**64, id="json-integer-over-int64"), pytest.param("1e400", id="float-overflow-range"),
    pytest.param(1e300, id="json-float-over-int64"),
])
def test_values_beyond_int64_are_a_range_error_decided_without_the_integer(value):
    from extender.core.quantity import QuantityRange

    with pytest.raises(QuantityRange, match="out of range"):
        to_bytes(value)


def test_cpu_over_int64_millicores_is_a_range_error():
    from extender.core.quantity import QuantityRange

    with pytest.raises(QuantityRange, match="millicores"):
        to_millicores("1e17")  # 1e20 millicores
    assert to_millicores("9e15") == 9 * 10**18


@pytest.mark.parametrize("value", [pytest.param("9" * 300, id="300-nines"), pytest.param("1" * 10**6, id="a-megabyte")])
def test_overlong_text_is_refused_quoting_only_a_prefix(value):
    with pytest.raises(QuantityError) as caught:
        to_bytes(value)
    assert len(str(caught.value)) < 150 and f"({len(value)} characters)" in str(caught.value)


@pytest.mark.parametrize("value", ["1e3Mi", "1Kii", "e3", "1e", "1e+", "--1"])
def test_kubernetes_grammar_admits_one_suffix_or_one_exponent(value):
    with pytest.raises(QuantityError, match="not a quantity"):
        parse(value)


def test_a_tiny_nonzero_value_rounds_up_to_one_unit_as_kubernetes_does():
    assert to_bytes("1e-999999") == 1 and to_millicores("1n") == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_json_numbers_are_not_quantities(value):
    with pytest.raises(QuantityError):
        to_bytes(value)


def test_the_largest_int64_quantities_still_parse():
    assert to_bytes("7Ei") == 7 * 2**60 and to_bytes(str(2**63 - 1)) == 2**63 - 1
