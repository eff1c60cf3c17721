"""The lecture's worked example of a convolution, computed by every conv2d algo."""
import numpy as np
import pytest

import convforge.functional as F

IMAGE = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]], np.float32)
FILTER = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], np.float32)


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("conv2d_forward")] + ["auto"])
def test_conv_worked_example(algo):
    out = F.conv2d(IMAGE[None, None], FILTER[None, None], algo=algo)
    want = [[12, 12, 17], [10, 17, 19], [9, 6, 14]]
    if algo == "winograd_4x4":  # its filter transform multiplies by 1/6, 1/12, 1/24: not exact
        np.testing.assert_allclose(out[0, 0], want, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(out[0, 0], want)
