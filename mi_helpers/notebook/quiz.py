"""The "check your understanding" questions at the end of each notebook.

Three questions per notebook, each with one right answer and the reason it is right. Where an answer is a
value the package knows (a scope, the IMDS address) it is computed from the package rather than written
twice. :func:`check_understanding` returns the widget (:class:`~mi_helpers.notebook.widgets.QuizView`):
pick answers, press "Check my answers" for a verdict per question, or "Show the answers".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mi_helpers.clouds import CLOUDS, scope_for
from mi_helpers.constants import Arm, Imds
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    from mi_helpers.notebook.widgets import QuizView

__all__ = ["QUIZZES", "Question", "check_understanding"]


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: ``choices[answer]`` is right, ``why`` says why."""

    prompt: str
    choices: tuple[str, ...]
    answer: int
    why: str

    @property
    def right(self) -> str:
        return self.choices[self.answer]


QUIZZES: dict[str, tuple[Question, ...]] = {
    "00": (
        Question(
            "Where does code on an Azure VM get a token for its managed identity?",
            (
                "From Microsoft Entra ID, with a client secret stored on the VM",
                f"From the Instance Metadata Service (IMDS) at {Imds.ADDRESS}, with no secret at all",
                "From Azure Resource Manager, with the VM's resource ID",
            ),
            1,
            "IMDS fetches the token from Entra ID for the VM's identity; the platform keeps the credential, "
            "so the VM never holds a secret.",
        ),
        Question(
            "Which ID of an identity goes into a role assignment?",
            ("Its client (application) ID", "Its principal (object) ID", "Its resource ID"),
            1,
            "Roles are assigned to principals: ARM checks the token's oid claim, which is the principal ID.",
        ),
        Question(
            "Which service answers the question: may I do this?",
            ("IMDS", "Azure Resource Manager, with Azure RBAC", "The VM's operating system"),
            1,
            "IMDS only decides whether you get a token; ARM checks its audience and expiry, then the role "
            "assignments at the scope.",
        ),
    ),
    "01": (
        Question(
            "Why prefer ManagedIdentityCredential over DefaultAzureCredential on a VM?",
            (
                "It imports faster",
                "DefaultAzureCredential tries other credentials first, so a stale AZURE_CLIENT_* variable or "
                "a developer's az login can quietly win",
                "DefaultAzureCredential cannot use a managed identity",
            ),
            1,
            "DefaultAzureCredential is a chain; on a VM, say which credential you mean.",
        ),
        Question(
            f"A token's aud claim is {Arm.URL}. Who may accept it?",
            ("Every Azure service", "Azure Resource Manager only", "Key Vault and Storage"),
            1,
            "A token is for one audience: its aud is the resource ID of the one service that accepts it.",
        ),
        Question(
            "IMDS answers 400 'Identity not found' to a request with client_id=<GUID>. The likely cause?",
            (
                "IMDS is being updated: retry in 70 seconds",
                "No identity with that client ID is attached to this VM, or the GUID is another kind of ID",
                "The token has expired",
            ),
            1,
            "IMDS did answer: it knows no such identity for this VM (an update would be 410, not 400).",
        ),
    ),
    "02": (
        Question(
            "What does a request for instance metadata (GET /metadata/instance) need?",
            (
                "A token for ARM",
                "Only the header Metadata: true, sent from the VM itself",
                "The Reader role on the VM",
            ),
            1,
            "Instance metadata needs no token and no role: only the VM can reach IMDS, with the header.",
        ),
        Question(
            "The token's oid is not the VM's principalId. What does that mean?",
            (
                "The token was forged",
                "Another identity signed in: a user-assigned one, or a developer's sign-in",
                "ARM's clock is wrong",
            ),
            1,
            "oid is the principal that signed in; the VM's principalId is its system-assigned identity.",
        ),
        Question(
            "ARM answers 403 AuthorizationFailed ('… or the scope is invalid') for a resource group you "
            "typed. What do you check first?",
            (
                "The spelling of the group (and the subscription), then the identity's role there",
                "The VM's clock",
                "The proxy settings of the VM",
            ),
            0,
            "ARM answers 403, not 404, for a scope the identity cannot see, whether it exists or not.",
        ),
    ),
    "03": (
        Question(
            "Which scope does Python ask a credential for, to get a token for Key Vault?",
            (
                scope_for("key vault"),
                "https://vault.azure.net/secrets/read",
                "api://vault/.default",
            ),
            0,
            "The scope is the service's resource ID plus /.default; a managed identity cannot ask for "
            "anything finer.",
        ),
        Question(
            "ARM answers 401 InvalidAuthenticationTokenAudience. Why?",
            (
                "The identity holds no role",
                "The token was issued for another service: its aud is not ARM",
                "The VM has no managed identity",
            ),
            1,
            "ARM checks the audience before anything else; a Storage token is not an ARM token.",
        ),
        Question(
            "The VM runs in Azure US Government. Which scope do the helpers ask for, for ARM?",
            (
                CLOUDS["usgov"].arm_scope,
                Arm.SCOPE,
                "https://management.usgovcloudapi.net/user_impersonation",
            ),
            0,
            "Each cloud has its own resource IDs; instance metadata (azEnvironment) says which cloud it is.",
        ),
    ),
    "04": (
        Question(
            "No selector; the system identity is on and two user-assigned identities are attached. Who "
            "answers?",
            (
                "The first user-assigned identity",
                "The system-assigned identity",
                "Nobody: 400 'Multiple user assigned identities exist'",
            ),
            1,
            "With a system identity present, no selector always means the system identity.",
        ),
        Question(
            "No system identity, two user-assigned identities, and no selector. What happens?",
            (
                "IMDS picks the first one attached",
                "400 'Multiple user assigned identities exist…': name the identity",
                "IMDS answers for the system identity anyway",
            ),
            1,
            "IMDS cannot choose for you: pass the client ID (or object or resource ID) of the one you want.",
        ),
        Question(
            "AZURE_CLIENT_ID is set to a user-assigned identity's client ID. Which credential reads it?",
            ("ManagedIdentityCredential()", "DefaultAzureCredential()", "Both of them"),
            1,
            "Only DefaultAzureCredential passes AZURE_CLIENT_ID on; pass client_id= to "
            "ManagedIdentityCredential yourself.",
        ),
    ),
    "05": (
        Question(
            "IMDS answers 410 Gone. What do you do?",
            (
                "Grant the identity a role",
                "Retry with back-off: IMDS is being updated and is back within 70 seconds",
                "Remove MSI_ENDPOINT",
            ),
            1,
            "410 is transient by design; waiting (with a bounded budget) is the fix.",
        ),
        Question(
            f"HTTP_PROXY is set and NO_PROXY does not list {Imds.ADDRESS}. What happens?",
            (
                "Nothing: IMDS requests ignore proxy settings",
                "The token request goes to the proxy, which cannot reach IMDS (or forwards it, and IMDS "
                "refuses)",
                "IMDS issues the token to the proxy",
            ),
            1,
            "Every HTTP client honours HTTP_PROXY; IMDS must be excluded in NO_PROXY.",
        ),
        Question(
            "Which of these failures goes away by waiting?",
            (
                "The identity holds no role at all",
                "A role assignment made a minute ago (it is still propagating)",
                "A misspelt resource group name",
            ),
            1,
            "Azure RBAC is eventually consistent: a new assignment can take minutes to apply.",
        ),
    ),
    "06": (
        Question(
            "May you paste report.to_json() into an issue?",
            (
                "Yes: it holds no token (a token shows as its first 8 characters and its length); names and "
                "IDs identify resources but are not secrets",
                "No: it holds the access token",
                "Only after deleting the checks",
            ),
            0,
            "Every text in the report is redacted; replace the names if your organisation asks you to.",
        ),
        Question(
            "A check of the checklist says 'skip'. Why?",
            (
                "A check it depends on failed, so its answer would mean nothing",
                "The check is not implemented yet",
                "The budget was unlimited",
            ),
            0,
            "The checks run in order: no token, no ARM read, no identity match.",
        ),
        Question(
            "The checklist fails at 'ARM can read the VM' with AuthorizationFailed. Whose ID goes into the "
            "fix?",
            (
                "The client ID of the identity",
                "The principal (object) ID of the identity that signed in",
                "The VM's vmId from instance metadata",
            ),
            1,
            "az role assignment create --assignee-object-id takes the principal ID (the token's oid).",
        ),
    ),
    "07": (
        Question(
            "The VM's identity is Contributor on a storage account. Reading a blob gets 403 "
            "AuthorizationPermissionMismatch. Why?",
            (
                "Contributor holds actions on the account but no data actions: reading blob bytes needs a "
                "Storage Blob Data role",
                "The token is for the wrong audience",
                "Contributor is still propagating",
            ),
            0,
            "Blob reads need Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read, a data "
            "action that Storage Blob Data Reader, Contributor and Owner hold; Owner and Contributor do not.",
        ),
        Question(
            "You granted Key Vault Secrets User a minute ago and the read still gets 403. What do you do?",
            (
                "Grant Key Vault Administrator as well",
                "Retry with back-off for a bounded time: role assignments take minutes to reach the service",
                "Switch the vault to access policies",
            ),
            1,
            "Azure RBAC is eventually consistent; a bounded retry of the 403 is the fix, not a bigger role.",
        ),
        Question(
            "A vault uses the 'Vault access policy' permission model. Which change lets the identity read a "
            "secret?",
            (
                "A role assignment of Key Vault Secrets User",
                "An access policy for the identity's object ID with the secret permission get",
                "Reader on the vault's resource group",
            ),
            1,
            "In access-policy mode role assignments do not count for data; only the vault's access policies "
            "do (or switch the vault to Azure RBAC first).",
        ),
    ),
}


def check_understanding(notebook: str) -> QuizView:
    """The quiz widget of ``notebook`` ("00" … "07", or a notebook name such as "03-tokens-…")."""
    from mi_helpers.notebook.widgets import QuizView

    key = str(notebook).strip()[:2]
    if key not in QUIZZES:
        raise InputError("notebook", f"{notebook!r} has no quiz (one of: {', '.join(QUIZZES)})", notebook)
    return QuizView(QUIZZES[key])
