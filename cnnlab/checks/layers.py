"""Checks for :mod:`cnnlab.layers`, the group ``layers`` of check names.

``get_check("layers.linear_forward")`` imports this module, which imports the modules
that register the group's checks, one per problem set: :mod:`cnnlab.checks.conv`
(problem set 2, the convolution layer), :mod:`cnnlab.checks.dense` (problem set 3, the
dense layers) and :mod:`cnnlab.checks.modern` (problem set 4, the layers of modern CNNs).
"""

from cnnlab.checks import conv, dense, modern  # noqa: F401  (they register the checks)
