"""Checks for drill 07: Barlow Twins' `barlow_twins_loss` (Zbontar et al. 2021) and VICReg's
`vicreg_loss` (Bardes et al. 2022), the two losses that prevent collapse by shaping the
statistics of the batch instead of by negatives or a stop-gradient.

Both losses are statistics of the batch, so most checks use inputs whose columns are columns of
a Hadamard matrix: every column has mean 0 and variance 1 over the batch and any two columns are
uncorrelated, so every normalisation, correlation and covariance has a closed form. A wrong
closed-form value is matched against what each classic mistake gives (the paper's pseudo-code
with its unbiased std, a cross-correlation divided by N - 1, lambda on the wrong term, a
biased variance, a covariance not centred...), so that one mistake gets one diagnosis. VICReg's
three terms are checked one at a time by zeroing the other two coefficients. Known answers are
stored in grader/data/barlow_twins_loss.json and vicreg_loss.json.

One module per graded name: `barlow` and `vicreg`, imported in that order.
"""

from . import barlow, vicreg  # noqa: F401, I001  (the order sets the registration order)
