from __future__ import annotations

import numpy as np
import pytest

from tuban.errors import UnsafeInputError
from tuban.raster.indices import compile_expression, expression_roles

ATTACKS = [
    "__import__('os').system('id')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "eval('1')",
    "exec('x=1')",
    "red.__class__",
    "nir[0]",
    "lambda: 1",
    "[x for x in (1, 2)]",
    "globals()",
    "red if nir else blue",
    "nir ** nir",
    "9 ** 9 ** 9",
    "'abc'",
    "b'x'",
    "True + red",
    "np.ones(10)",
    "red; nir",
    "x := 1",
    "os",
    "sqrt(red, key=1)",
    "getattr(red, 'tofile')",
    "-" * 100 + "red",
    "red + " * 300 + "red",
    "",
    "   ",
    "1 < red < 2",
    "{'a': 1}",
    "f'{red}'",
    "...",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_attacks_are_refused(text: str) -> None:
    with pytest.raises(UnsafeInputError):
        compile_expression(text)


def test_an_index_expression_evaluates() -> None:
    bands = {"nir": np.array([0.4, 0.0], np.float32), "red": np.array([0.1, 0.0], np.float32)}
    f = compile_expression("(nir - red) / (nir + red)")
    out = f(bands)
    assert out[0] == pytest.approx(0.6)
    assert out[1] == 0  # 0/0 → 0, never NaN
    assert expression_roles("(nir - red) / (nir + red) + abs(swir1)") == ("nir", "red", "swir1")
    assert compile_expression("where(nir > 0.2, 1, 0)")(bands).tolist() == [1.0, 0.0]
