"""The operator sign-in as a learner types it in a Lab terminal: the variables, never the secret's value.

On Azure you sign in as yourself with ``az login``; in the emulator the operator service principal stands in
for you (``Emulator.environment()`` exports its client ID, the tenant and the per-run secret).
"""

from __future__ import annotations

OPERATOR_LOGIN = (
    'az login --service-principal -u "$MI_HELPERS_OPERATOR_CLIENT_ID" '
    '-p "$MI_HELPERS_OPERATOR_CLIENT_SECRET" --tenant "$MI_HELPERS_TENANT_ID"'
)
