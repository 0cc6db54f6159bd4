"""What the tutorial notebooks call, so that their code cells stay short (``from mi_helpers import notebook
as nb``):

* set-up (:mod:`.startup`): :func:`setup` prints which target this run uses (and why) and makes a bad input
  (:class:`~mi_helpers.validate.InputError`) show as one line instead of a traceback; :func:`stack_check`
  says in one table whether the installed packages satisfy ``mi-helpers``;
* showing errors (:mod:`.display`): :func:`show_errors` runs a block that may fail on purpose and renders
  the raw error text, then the diagnosis card, so no cell of the tutorial ever fails; the displayable
  pieces (:class:`ErrorText`, :class:`Notice`, :class:`DiagnosisCard`) are shared with the widgets;
* lesson helpers (:mod:`.lessons`): :func:`whoami`, :func:`vm_identities`, :func:`compare_azure_client_id`…
* a scenario for one block (:mod:`.sandbox`): :func:`private_emulator` switches an emulator of the block's
  own, never the one ``mi-helpers lab`` shares between notebooks;
* the data-plane lessons (:mod:`.data_lessons`): :func:`grant_data_role` as the operator, through ARM,
  and :func:`retry_while_propagating`, the bounded retry a fresh data role needs;
* the one table style (:mod:`.tables`), installed by :func:`setup` for every DataFrame a cell shows;
* the check of understanding at the end of each notebook (:mod:`.quiz`): :func:`check_understanding`.

The widgets (:mod:`.widgets`, ipywidgets) and the error lab (:mod:`.error_lab`) are imported on their own.
"""

from __future__ import annotations

from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.notebook.data_lessons import grant_data_role, retry_while_propagating
from mi_helpers.notebook.display import (
    Caught,
    DiagnosisCard,
    ErrorText,
    Notice,
    error_text,
    explain,
    sdk_error_text,
    show_errors,
)
from mi_helpers.notebook.lessons import (
    as_table,
    compare_azure_client_id,
    cross_check_vm,
    no_identity_card,
    pick_user_assigned,
    read_vm_with_token_for,
    report_principal,
    vm_identities,
    whoami,
)
from mi_helpers.notebook.quiz import check_understanding
from mi_helpers.notebook.sandbox import lesson_scenario, private_emulator
from mi_helpers.notebook.startup import install_notebook_error_display, setup, stack_check

__all__ = [
    "Caught",
    "DiagnosisCard",
    "ErrorText",
    "Notice",
    "as_table",
    "check_understanding",
    "compare_azure_client_id",
    "cross_check_vm",
    "error_text",
    "explain",
    "grant_data_role",
    "install_notebook_error_display",
    "lesson_scenario",
    "no_identity_card",
    "pick_user_assigned",
    "private_emulator",
    "quiet_sdk_logs",
    "read_vm_with_token_for",
    "report_principal",
    "retry_while_propagating",
    "sdk_error_text",
    "setup",
    "show_errors",
    "stack_check",
    "vm_identities",
    "whoami",
]
