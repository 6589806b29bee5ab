"""Deprecated: renamed :mod:`streamify.export.host_contract` (the checks before a file is written)."""

import warnings

from streamify.export.host_contract import REL_TOL, REPEAT_TOL, ContractReport, check_host_contract, host_signal

__all__ = ["REL_TOL", "REPEAT_TOL", "ContractReport", "check_host_contract", "host_signal"]

warnings.warn(
    "streamify.export.contract is renamed streamify.export.host_contract; import from there",
    DeprecationWarning,
    stacklevel=2,
)
