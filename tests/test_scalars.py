import datetime

import polars as pl
import pytest

from perfbench.scalars import integer, number, optional_number


def test_numbers_of_numeric_columns_come_back_unchanged():
    ints, floats = pl.Series([3, 1, 2]), pl.Series([0.5, 2.5])
    assert number(ints.max()) == 3 and type(number(ints.max())) is int
    assert number(floats.min()) == 0.5
    assert integer(ints.min()) == 1
    assert optional_number(floats.median()) == 1.5


def test_none_of_an_empty_column():
    empty = pl.Series([], dtype=pl.Float64)
    assert optional_number(empty.max()) is None
    with pytest.raises(TypeError, match="NoneType"):
        number(empty.max())
    with pytest.raises(TypeError, match="NoneType"):
        integer(pl.Series([], dtype=pl.Int64).max())


def test_other_types_are_refused():
    dates = pl.Series([datetime.date(2024, 1, 1)])
    with pytest.raises(TypeError, match="date"):
        number(dates.max())
    with pytest.raises(TypeError, match="float"):
        integer(pl.Series([1.5]).max())
    with pytest.raises(TypeError, match="str"):
        optional_number(pl.Series(["a"]).max())
