"""The fix-recipe catalogue: for every diagnosis id, what it means and how to fix it.

Kept apart from the classification (:mod:`.rules`) so the prose (titles, causes, steps, commands) lives
in one place and the logic in another. Commands use the current flags of the az CLI and Az PowerShell and are
filled in with the real subscription / resource group / VM / principal / client id when they are known;
otherwise they keep readable placeholders such as ``<rg>``.

The ``commands`` mapping has three keys: ``portal`` (click path), ``az`` (a bash shell: az CLI, curl,
environment variables) and ``powershell`` (Az PowerShell / Windows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mi_helpers.constants import Arm, Imds

DOC_IMDS = "https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service"
DOC_HOWTO_VM = (
    "https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token"
)
DOC_CONFIGURE_VM = "https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/qs-configure-portal-windows-vm"
DOC_UAMI = (
    "https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
    "how-manage-user-assigned-managed-identities"
)
DOC_ROLE_ASSIGN = (
    "https://learn.microsoft.com/azure/role-based-access-control/role-assignments-portal-managed-identity"
)
DOC_RBAC_TROUBLESHOOT = "https://learn.microsoft.com/azure/role-based-access-control/troubleshooting"
DOC_NOT_FOUND = "https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-not-found"
DOC_THROTTLING = (
    "https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling"
)
DOC_CLAIMS = "https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference"
DOC_CLI_TROUBLESHOOT = "https://learn.microsoft.com/cli/azure/use-azure-cli-successfully-troubleshooting"
DOC_PY_IDENTITY = "https://learn.microsoft.com/python/api/overview/azure/identity-readme"


@dataclass(frozen=True)
class Placeholders:
    """The values a command needs, with readable placeholders for the unknown ones."""

    sub: str = "<sub>"
    rg: str = "<rg>"
    vm: str = "<vm>"
    principal: str = "<principalId>"
    client: str = "<clientId>"
    scope: str = "<scope>"
    resource: str = Arm.RESOURCE
    imds_url: str = Imds.URL

    @classmethod
    def from_context(cls, ctx: Mapping[str, object]) -> Placeholders:
        """Build placeholders from a plain mapping of context values (None/empty = unknown)."""

        def pick(key: str, default: str) -> str:
            value = ctx.get(key)
            return str(value) if value else default

        sub = pick("subscription_id", "<sub>")
        rg = pick("resource_group", "<rg>")
        scope_default = f"/subscriptions/{sub}/resourceGroups/{rg}" if "<" not in sub + rg else "<scope>"
        resource = pick("resource", Arm.RESOURCE)
        return cls(
            sub=sub,
            rg=rg,
            vm=pick("vm_name", "<vm>"),
            principal=pick("principal_id", "<principalId>"),
            client=pick("client_id", "<clientId>"),
            scope=pick("scope", scope_default),
            resource=resource if resource.startswith("http") else Arm.RESOURCE,
            imds_url=pick("imds_url", Imds.URL).rstrip("/"),
        )

    @property
    def token_url(self) -> str:
        """The IMDS token URL for the resource (URL-encoded as curl needs it)."""
        enc = self.resource.replace(":", "%3A").replace("/", "%2F")
        return f"{self.imds_url}{Imds.TOKEN_PATH}?api-version={Imds.TOKEN_API_VERSION}&resource={enc}"

    @property
    def token_url_with_selector(self) -> str:
        """The token URL plus ``client_id`` when a client id is known."""
        return self.token_url + ("" if self.client.startswith("<") else f"&client_id={self.client}")


@dataclass(frozen=True)
class Recipe:
    """One catalogue entry: the prose, a function that renders the commands, and whether it passes.

    ``transient``: the failure goes away by itself (an update, throttling, a 5xx, something propagating),
    so waiting and retrying with back-off is (part of) the fix.
    """

    title: str
    cause: str
    fix: tuple[str, ...]
    docs: str
    commands: Callable[[Placeholders], dict[str, str]]
    transient: bool = False


def _curl(p: Placeholders, extra: str = "") -> str:
    return f'curl -s {extra}--noproxy "*" -H "Metadata: true" "{p.token_url_with_selector}"'


#: Windows PowerShell 5.1, the default shell of a Windows VM, has neither ``-NoProxy`` nor
#: ``-ResponseHeadersVariable`` (both are PowerShell 6+; Invoke-RestMethod's page on Microsoft Learn): there
#: a call fails with "A parameter cannot be found that matches parameter name 'NoProxy'". A web session
#: whose proxy is an empty ``WebProxy`` (``WebRequestSession.Proxy``) connects directly instead.
PS51_SESSION = (
    "$s = New-Object Microsoft.PowerShell.Commands.WebRequestSession; "
    "$s.Proxy = New-Object System.Net.WebProxy"
)
PS7_HEADING = "# PowerShell 7 (pwsh): -NoProxy needs PowerShell 6 or later"
PS51_HEADING = "# Windows PowerShell 5.1 (the Windows default, no -NoProxy): a session without proxy"


def _irm(p: Placeholders, extra: str = "", *, session: bool = False) -> str:
    """``Invoke-RestMethod`` of the token URL, bypassing proxies (``-NoProxy``, or the 5.1 session ``$s``)."""
    bypass = "-WebSession $s " if session else "-NoProxy "
    return (
        f'Invoke-RestMethod {bypass}{extra}-Headers @{{Metadata="true"}} -Method GET '
        f'-Uri "{p.token_url_with_selector}"'
    )


def _ps_forms(seven: str, fifty_one: str, before: str = "") -> str:
    """The same PowerShell twice: for PowerShell 7, then for Windows PowerShell 5.1 (with its session)."""
    head = f"{before}\n" if before else ""
    return f"{head}{PS7_HEADING}\n{seven}\n{PS51_HEADING}\n{PS51_SESSION}\n{fifty_one}"


def _ps_irm(p: Placeholders, extra: str = "", template: str = "{}", before: str = "") -> str:
    """An IMDS call (``template`` around it, e.g. a retry loop) in its PowerShell 7 and 5.1 forms."""
    return _ps_forms(template.format(_irm(p, extra)), template.format(_irm(p, extra, session=True)), before)


def _cmd_not_on_azure(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Nothing to change in the portal: a managed identity only exists inside Azure. Run this on "
        "the VM (VM → Connect), or use the local emulator here (`mi-helpers lab`).",
        "az": "az login    # off Azure: sign in as yourself instead\n"
        "# or point at the local emulator:\n"
        "export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:<port>\n"
        "export NO_PROXY=localhost,127.0.0.1 no_proxy=localhost,127.0.0.1",
        "powershell": "Connect-AzAccount    # off Azure: sign in as yourself instead\n"
        '$env:AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1:<port>"\n'
        '$env:NO_PROXY = "localhost,127.0.0.1"',
    }


def _cmd_unreachable(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "VM → Overview: confirm the code runs on the VM itself (containers need host networking "
        f"or a route to {Imds.ADDRESS}).",
        "az": _curl(p, "--connect-timeout 3 ") + "\n"
        "# in a container: docker run --network host …   or   ip route | grep 169.254",
        "powershell": _ps_irm(p, "-TimeoutSec 5 ")
        + f"\nroute print {Imds.ADDRESS}    # Windows containers need a route to IMDS",
    }


def _cmd_timeout(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "VM → Help → Resource health: check the VM and its agent are healthy.",
        "az": _curl(p, "--max-time 5 ") + "\n"
        "# Python: ManagedIdentityCredential(read_timeout=5, retry_total=2)",
        "powershell": _ps_irm(p, "-TimeoutSec 5 "),
    }


def _cmd_header(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: the request itself lacks the header.",
        "az": _curl(p),
        "powershell": _ps_irm(p),
    }


def _cmd_enable(p: Placeholders) -> dict[str, str]:
    """Switch the VM's system-assigned identity on (and look at it)."""
    return {
        "portal": f"Virtual machines → {p.vm} → Identity → System assigned → Status: On → Save → Yes.",
        "az": f"az vm identity assign -g {p.rg} -n {p.vm}\naz vm identity show -g {p.rg} -n {p.vm}",
        "powershell": f"$vm = Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}\n"
        f"Update-AzVM -ResourceGroupName {p.rg} -VM $vm -IdentityType SystemAssigned\n"
        f"(Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}).Identity",
    }


def _cmd_assign(p: Placeholders) -> dict[str, str]:
    enable = _cmd_enable(p)
    az, ps = enable["az"], enable["powershell"]
    portal = enable["portal"].removesuffix(".") + (
        " (for a user-assigned identity: User assigned → + Add → pick it → Add)."
    )
    if not p.client.startswith("<"):
        az += (
            f"\n# user-assigned: find the identity whose clientId is {p.client}, then attach it\n"
            f"az identity list -g {p.rg} --query \"[?clientId=='{p.client}'].id\" -o tsv\n"
            f"az vm identity assign -g {p.rg} -n {p.vm} --identities <uami-resource-id>"
        )
        ps += (
            f"\n$id = Get-AzUserAssignedIdentity -ResourceGroupName {p.rg} | "
            f"Where-Object ClientId -eq '{p.client}'\n"
            f"Update-AzVM -ResourceGroupName {p.rg} -VM $vm -IdentityType UserAssigned -IdentityId $id.Id"
        )
    az += "\n# then, on the VM, ask IMDS itself: 200 with a token, or 400 'Identity not found'\n" + _curl(p)
    ps += "\n" + _ps_irm(p, before="# then, on the VM, ask IMDS itself")
    return {"portal": portal, "az": az, "powershell": ps}


def _cmd_principal_as_client(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Identity → User assigned: open the identity; its Client ID "
        "(not its Object (principal) ID) is what client_id wants.",
        "az": f"az vm identity show -g {p.rg} -n {p.vm} --query userAssignedIdentities\n"
        f"az login --identity --client-id {p.client}\n" + _curl(p),
        "powershell": f"(Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}).Identity.UserAssignedIdentities\n"
        f"Connect-AzAccount -Identity -AccountId {p.client}",
    }


def _cmd_scope_not_visible(p: Placeholders) -> dict[str, str]:
    grant = _cmd_grant(p)
    return {
        "portal": "Search bar → Resource groups: compare the exact name (and the subscription filter); "
        "if the name is right: " + grant["portal"],
        "az": f"az group list -o table --subscription {p.sub}    # as a user who can see the subscription\n"
        "# the name is right? then grant a role there:\n" + grant["az"],
        "powershell": f"Set-AzContext -Subscription {p.sub}\nGet-AzResourceGroup\n" + grant["powershell"],
    }


def _cmd_selector(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Identity → User assigned: open the identity you want and "
        "copy its Client ID.",
        "az": f"az vm identity show -g {p.rg} -n {p.vm} --query userAssignedIdentities\n"
        f"az login --identity --client-id {p.client}",
        "powershell": f"(Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}).Identity.UserAssignedIdentities\n"
        f"Connect-AzAccount -Identity -AccountId {p.client}",
    }


def _cmd_identity_propagating(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Identity: the identity shows as assigned; wait a minute.",
        "az": f"az vm identity show -g {p.rg} -n {p.vm}\n"
        f"for i in 1 2 3 4 5 6; do {_curl(p, '-f ')} && break; sleep 10; done",
        "powershell": _ps_irm(
            p,
            template="foreach ($i in 1..6) {{ try {{ {}; break }} catch {{ Start-Sleep 10 }} }}",
            before=f"(Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}).Identity",
        ),
    }


def _cmd_retry(p: Placeholders, sleep: int) -> dict[str, str]:
    return {
        "portal": "VM → Help → Resource health: check for a platform event; then just retry.",
        "az": f"for i in 1 2 3 4 5 6; do {_curl(p, '-f ')} && break; sleep {sleep}; done",
        "powershell": _ps_irm(
            p,
            template="foreach ($i in 1..6) {{ try {{ {}; break }} catch {{ Start-Sleep "
            + str(sleep)
            + " }} }}",
        ),
    }


def _cmd_throttled(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: reduce the request rate (one credential per process, cached tokens).",
        "az": _curl(p, "-i ") + "    # read the Retry-After header\n"
        "# Python: create ONE ManagedIdentityCredential per process and reuse it",
        "powershell": _ps_forms(
            _irm(p, "-ResponseHeadersVariable h ") + "; $h['Retry-After']",
            f"try {{ {_irm(p, session=True)} }} catch {{ $_.Exception.Response.Headers['Retry-After'] }}",
        ),
    }


def _cmd_non_imds(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "VM → Overview: check this really is an Azure VM; other clouds and VMMs also answer on "
        f"{Imds.ADDRESS}.",
        "az": _curl(p, "-i ") + "    # who answers? (expect JSON, not HTML)\n"
        "export AZURE_TOKEN_CREDENTIALS=dev    # off Azure: let DefaultAzureCredential skip managed identity",
        "powershell": _ps_irm(p) + '\n$env:AZURE_TOKEN_CREDENTIALS = "dev"',
    }


def _cmd_proxy(p: Placeholders) -> dict[str, str]:
    hosts = f"{Imds.ADDRESS},localhost,127.0.0.1"
    return {
        "portal": "No portal change: the proxy setting lives on the machine (environment variables).",
        "az": f"export NO_PROXY={hosts} no_proxy={hosts}\n" + _curl(p),
        "powershell": _ps_irm(p, before=f'$env:NO_PROXY = "{hosts}"'),
    }


def _cmd_legacy(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Extensions + applications: remove "
        "ManagedIdentityExtensionForLinux/Windows; use the IMDS endpoint instead.",
        "az": "unset MSI_ENDPOINT MSI_SECRET\n"
        f"az vm extension delete -g {p.rg} --vm-name {p.vm} -n ManagedIdentityExtensionForLinux\n"
        "az login --identity    # not --msi; add --client-id <clientId> for a user-assigned identity\n"
        + _curl(p),
        "powershell": "Remove-Item Env:MSI_ENDPOINT, Env:MSI_SECRET -ErrorAction SilentlyContinue\n"
        + _ps_irm(p, before="Connect-AzAccount -Identity"),
    }


def _cmd_grant(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Open the scope (VM, resource group or subscription) → Access control (IAM) → + Add → Add "
        "role assignment → Reader → Members: Managed identity → + Select members → pick the VM's identity "
        "→ Review + assign.",
        "az": f"az role assignment create --assignee-object-id {p.principal} "
        f"--assignee-principal-type ServicePrincipal --role Reader --scope {p.scope}\n"
        f"az role assignment list --all --assignee-object-id {p.principal} -o table",
        "powershell": f"New-AzRoleAssignment -ObjectId {p.principal} -RoleDefinitionName Reader "
        f"-Scope {p.scope}\nGet-AzRoleAssignment -ObjectId {p.principal}",
    }


def _cmd_role_propagating(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Scope → Access control (IAM) → Role assignments: the assignment is listed; wait (minutes, "
        "up to ~30 min) and retry.",
        "az": f"az role assignment list --all --assignee-object-id {p.principal} -o table\n"
        f"for i in 1 2 3 4 5; do az vm show -g {p.rg} -n {p.vm} -o none && break; sleep 60; done",
        "powershell": f"Get-AzRoleAssignment -ObjectId {p.principal}\n"
        f"foreach ($i in 1..5) {{ try {{ Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm} -ErrorAction Stop; "
        "break } catch { Start-Sleep 60 } }",
    }


def _cmd_audience(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: request the token for the right resource.",
        "az": "az account get-access-token --resource https://management.azure.com/\n"
        '# Python: credential.get_token("https://management.azure.com/.default")   # exactly one scope',
        "powershell": "Get-AzAccessToken -ResourceUrl https://management.azure.com/",
    }


def _cmd_unknown_resource(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change for an Azure service: copy its resource ID from Microsoft Learn's "
        "list of services that support Entra authentication. Your own API: Microsoft Entra ID → "
        "App registrations → the app → Expose an API → Application ID URI.",
        "az": "az account get-access-token --resource https://management.azure.com/\n"
        '# Python: mi.audiences() lists the documented IDs; mi.scope_for("arm") gives ARM\'s scope',
        "powershell": "Get-AzAccessToken -ResourceUrl https://management.azure.com/",
    }


def _cmd_api_version(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: the request names an api-version the resource type does not have.",
        "az": "# az and the SDK clients send a supported api-version themselves: drop a hand-written\n"
        "# api_version= / ?api-version=, or take one from the list in the error message",
        "powershell": "# the Az cmdlets send a supported api-version themselves; in Invoke-AzRestMethod\n"
        "# take one from the list in the error message",
    }


def _cmd_expired(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: check the machine's clock.",
        "az": "date -u; timedatectl status    # is 'System clock synchronized: yes'?\n"
        "sudo chronyc makestep             # resync now (chrony)",
        "powershell": "[DateTime]::UtcNow\nw32tm /query /status\nw32tm /resync",
    }


def _cmd_resource_nf(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Search bar → Virtual machines: check the exact name, resource group and subscription.",
        "az": f"az vm list -g {p.rg} -o table\naz resource list -n {p.vm} -o table",
        "powershell": f"Get-AzVM -ResourceGroupName {p.rg}\nGet-AzResource -Name {p.vm}",
    }


def _cmd_rg_nf(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Search bar → Resource groups: check the name and the subscription filter.",
        "az": f"az group list -o table --subscription {p.sub}",
        "powershell": f"Set-AzContext -Subscription {p.sub}\nGet-AzResourceGroup",
    }


def _cmd_sub_nf(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Search bar → Subscriptions: check the subscription ID and that the identity has a role "
        "in it.",
        "az": "az account list -o table\naz login --identity --allow-no-subscriptions",
        "powershell": f"Get-AzSubscription\nSet-AzContext -Subscription {p.sub}",
    }


def _cmd_arm_throttled(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: fewer ARM reads (cache results, batch with Resource Graph).",
        "az": f"az vm show -g {p.rg} -n {p.vm} --debug 2>&1 | grep -i -e retry-after -e x-ms-ratelimit",
        "powershell": "Start-Sleep -Seconds 10    # honour Retry-After, then retry once",
    }


def _cmd_tls(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: the machine does not trust the TLS certificate it was shown.",
        "az": "export REQUESTS_CA_BUNDLE=<ca-bundle.pem>  # certifi roots + your CA (emulator: its bundle)\n"
        "env | grep -i -e _proxy -e CA_BUNDLE          # a TLS-inspecting proxy?",
        "powershell": '$env:REQUESTS_CA_BUNDLE = "<ca-bundle.pem>"',
    }


def _cmd_invalid_token(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: fetch a fresh token from IMDS and send it unchanged.",
        "az": _curl(p),
        "powershell": _ps_irm(p),
    }


def _cmd_wrong_identity(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Identity: compare the Object (principal) ID with the "
        "token's oid.",
        "az": f"az vm identity show -g {p.rg} -n {p.vm}\n"
        "env | grep -e AZURE_CLIENT_ID -e IDENTITY_ -e MSI_    # settings that switch the identity",
        "powershell": f"(Get-AzVM -ResourceGroupName {p.rg} -Name {p.vm}).Identity\n"
        f"Connect-AzAccount -Identity -AccountId {p.client}",
    }


def _cmd_unknown(p: Placeholders) -> dict[str, str]:
    return {
        "portal": f"Virtual machines → {p.vm} → Identity: check which identities are on.",
        "az": _curl(p, "-i ") + "\n"
        '# Python: logging.getLogger("azure.identity").setLevel(logging.INFO) shows the credential used',
        "powershell": _ps_irm(p),
    }


_UNREACH_STEPS = (
    "Check you are on an Azure VM (or in a container with a path to the host's IMDS).",
    "Ask IMDS directly with curl --noproxy (command below); no answer means no managed identity here.",
    "In a container use host networking or a route to 169.254.169.254.",
    "Off Azure: sign in as yourself (az login) or use the local emulator; exclude managed identity from "
    "DefaultAzureCredential.",
)

CATALOGUE: dict[str, Recipe] = {
    "not-on-azure": Recipe(
        "Not running on an Azure VM",
        "This machine is not an Azure VM, so there is no Instance Metadata Service (IMDS) at "
        "169.254.169.254 and no managed identity to sign in with.",
        (
            "Run the code on the Azure VM, where its managed identity exists.",
            "Off Azure, sign in as yourself (az login / Connect-AzAccount) with a developer credential, or "
            "set AZURE_TOKEN_CREDENTIALS=dev for DefaultAzureCredential.",
            "For this tutorial, point the clients at the local emulator (AZURE_POD_IDENTITY_AUTHORITY_HOST).",
        ),
        DOC_IMDS,
        _cmd_not_on_azure,
    ),
    "imds-unreachable": Recipe(
        "IMDS cannot be reached",
        "Nothing answered at the IMDS address (connection refused, no route, or the packets are dropped). "
        "The SDK words this 'no response from the IMDS endpoint'.",
        _UNREACH_STEPS,
        DOC_IMDS,
        _cmd_unreachable,
    ),
    "imds-timeout": Recipe(
        "IMDS accepted the connection but never answered",
        "The IMDS address accepted the TCP connection but sent no reply before the read timeout. Without an "
        "explicit read_timeout the SDK waits 300 s per try (up to ~20 minutes).",
        (
            "Always pass read_timeout= and retry_total= to ManagedIdentityCredential so waits are bounded.",
            "Ask IMDS directly with a short --max-time (command below).",
            "If it keeps hanging, check firewalls/VPN software on the VM and the VM's health.",
        ),
        DOC_IMDS,
        _cmd_timeout,
        transient=True,
    ),
    "missing-metadata-header": Recipe(
        "The request lacks the 'Metadata: true' header",
        "IMDS rejects every request without the header 'Metadata: true' (all lower case); it protects "
        "against server-side request forgery.",
        (
            "Send the header Metadata: true with every IMDS request.",
            "Prefer the SDK (ManagedIdentityCredential) which always sends it.",
        ),
        DOC_HOWTO_VM,
        _cmd_header,
    ),
    "identity-not-assigned": Recipe(
        "No managed identity is assigned (or the ID is wrong)",
        "IMDS answered 400 'Identity not found': the VM has no system-assigned identity enabled, the "
        "user-assigned identity asked for is not attached to this VM, or the wrong kind of ID was passed "
        "(e.g. a principal/object ID given as client_id). The SDK's 'no response from the IMDS endpoint' "
        "wording is misleading: IMDS did answer.",
        (
            "Enable the VM's system-assigned identity, or attach the user-assigned identity to the VM.",
            "If you pass an ID, pass the identity's client ID as client_id (object ID only as object_id).",
            "Then ask IMDS from the VM itself with curl or Invoke-RestMethod (the last commands below).",
        ),
        DOC_CONFIGURE_VM,
        _cmd_assign,
    ),
    "vm-without-identity": Recipe(
        "The VM has no managed identity",
        "ARM returned the VM, and its identity block is empty: no system-assigned identity is switched on "
        "and no user-assigned identity is attached. Code on that VM gets 400 'Identity not found' from "
        "IMDS for every token request.",
        (
            "Switch the system-assigned identity on (az vm identity assign, below), or attach a "
            "user-assigned identity.",
            "Then give the new identity a role where it needs one (its principal ID is in az vm identity "
            "show).",
        ),
        DOC_CONFIGURE_VM,
        _cmd_enable,
    ),
    "principal-id-as-client-id": Recipe(
        "A principal (object) ID was passed as client_id",
        "The GUID passed as client_id is the principal (object) ID of a user-assigned identity, not its "
        "client ID. IMDS looks identities up by the kind of ID you name, so it answers 400 'Identity not "
        "found' although the identity is attached.",
        (
            "Pass the identity's client ID as client_id (the evidence names it), or keep the GUID and pass "
            "it as object_id instead.",
            "The three IDs: client ID for choosing the identity, principal (object) ID for role "
            "assignments, resource ID for its ARM path.",
        ),
        DOC_UAMI,
        _cmd_principal_as_client,
    ),
    "user-assigned-selector-required": Recipe(
        "Several user-assigned identities: say which one",
        "The VM has no system-assigned identity and two or more user-assigned identities, so IMDS cannot "
        "choose one for a request without client_id / object_id / msi_res_id.",
        (
            "Find the client ID of the identity you want (portal or az vm identity show).",
            "Pass it everywhere: ManagedIdentityCredential(client_id=…), az login --identity --client-id, "
            "Connect-AzAccount -Identity -AccountId.",
            "Or enable the system-assigned identity if your code relies on 'no selector'.",
        ),
        DOC_UAMI,
        _cmd_selector,
    ),
    "identity-propagating": Recipe(
        "The identity was just assigned and is still propagating",
        "The identity exists in Azure Resource Manager and is attached to the VM, but IMDS does not know it "
        "yet and answers 'Identity not found' for a short while.",
        (
            "Wait a minute and retry with backoff.",
            "In automation, sleep between assigning the identity and using it.",
        ),
        DOC_HOWTO_VM,
        _cmd_identity_propagating,
        transient=True,
    ),
    "imds-updating": Recipe(
        "IMDS is being updated (transient)",
        "IMDS answered 410 Gone (or 404): it is going through an update and will be available again within "
        "about 70 seconds.",
        (
            "Retry with backoff for at least 70 seconds (recent SDKs do this for 410).",
            "Wrap az calls in a retry loop in scripts: the az CLI does not retry.",
        ),
        DOC_IMDS,
        lambda p: _cmd_retry(p, 15),
        transient=True,
    ),
    "imds-throttled": Recipe(
        "IMDS is throttling requests (429)",
        "Too many requests reached IMDS (limits: 5/s per VM, identity 20/s and 5 concurrent). Usually many "
        "processes or a loop each create their own credential.",
        (
            "Create one credential per process and reuse it (its token cache avoids most requests).",
            "Back off and honour the Retry-After header.",
        ),
        DOC_IMDS,
        _cmd_throttled,
        transient=True,
    ),
    "imds-server-error": Recipe(
        "IMDS returned a server error (5xx)",
        "IMDS (or the identity service behind it) failed with a 5xx status. It is safe to retry after at "
        "least a second.",
        (
            "Retry with exponential backoff.",
            "If it persists, check the VM's Resource health and open a support case.",
        ),
        DOC_IMDS,
        lambda p: _cmd_retry(p, 5),
        transient=True,
    ),
    "non-imds-response": Recipe(
        "Something other than Azure IMDS answered",
        "The metadata address answered with something that is not Azure IMDS JSON (HTML, plain text, or a "
        "401 from another cloud's or VMM's metadata service). azure-identity 1.27 reports that as "
        "'ManagedIdentityCredential authentication unavailable.'",
        (
            "Check that you are on an Azure VM; see who answers with curl -i (command below).",
            "Off Azure, let DefaultAzureCredential skip managed identity (AZURE_TOKEN_CREDENTIALS=dev).",
            "Upgrade azure-identity (older versions let non-JSON answers stop the credential chain).",
        ),
        DOC_IMDS,
        _cmd_non_imds,
    ),
    "proxy-intercepts-imds": Recipe(
        "A proxy intercepts the IMDS requests",
        "HTTP_PROXY/ALL_PROXY send the IMDS request to a proxy. IMDS is not meant to be used behind a proxy: "
        "the proxy cannot reach the link-local address (502/504 gateway error) or forwards the request with "
        "X-Forwarded-For, which IMDS rejects.",
        (
            "Exclude the IMDS address (and localhost for the emulator) from proxying: NO_PROXY and no_proxy.",
            'For ad-hoc checks use curl --noproxy "*" / Invoke-RestMethod -NoProxy.',
        ),
        DOC_IMDS,
        _cmd_proxy,
    ),
    "legacy-extension-endpoint": Recipe(
        "Legacy managed-identity endpoint or flag",
        "The request uses the retired managed-identity VM extension (http://localhost:50342/oauth2/token, "
        "deprecated since January 2019) or a removed flag (az login --msi, --username), or MSI_ENDPOINT "
        "routes the SDK away from IMDS.",
        (
            "Use IMDS: http://169.254.169.254/metadata/identity/oauth2/token (the SDK does this by default).",
            "Unset MSI_ENDPOINT / MSI_SECRET left over from old tools.",
            "Use the current flags: az login --identity [--client-id …].",
        ),
        DOC_HOWTO_VM,
        _cmd_legacy,
    ),
    "arm-authorization-failed": Recipe(
        "The identity has no role that allows this (403 AuthorizationFailed)",
        "Signing in worked, but the identity holds no role assignment at or above the scope it tried to "
        "read, so Azure Resource Manager refuses (403). 'No subscriptions found' is the same cause.",
        (
            "Grant Reader (or a narrower role) on the VM or resource group to the identity's principal "
            "(object) ID — never its client ID.",
            "Role assignments take a few minutes to apply; then retry.",
            "If you typed the resource group or resource name, check its spelling too: ARM answers 403, not "
            "404, for a scope the identity cannot see ('… or the scope is invalid').",
        ),
        DOC_ROLE_ASSIGN,
        _cmd_grant,
    ),
    "arm-scope-not-visible": Recipe(
        "403 at a scope the identity cannot see: check the name, then the role",
        "ARM answered 403 AuthorizationFailed ('… or the scope is invalid') for a resource group this "
        "identity cannot see, although it can see others in the subscription. ARM answers the same 403 for "
        "a group that does not exist and for one the identity holds no role on, so a misspelt name looks "
        "like a missing role.",
        (
            "Check the resource group name first (and the subscription): compare it with the groups the "
            "identity can see (evidence) or with az group list as a user who can see the subscription.",
            "If the name is right, grant Reader (or a narrower role) at that scope to the identity's "
            "principal (object) ID (commands below).",
        ),
        DOC_RBAC_TROUBLESHOOT,
        _cmd_scope_not_visible,
    ),
    "role-propagating": Recipe(
        "The role assignment exists but has not taken effect yet",
        "A role assignment for this identity exists at or above the scope, but Azure RBAC is eventually "
        "consistent: right after a change ARM still answers 403 for a while (minutes, up to ~30 min).",
        (
            "Wait and retry with backoff (minutes, not seconds).",
            "Assign roles directly to the identity, with --assignee-object-id and "
            "--assignee-principal-type ServicePrincipal to skip the Graph lookup.",
        ),
        DOC_RBAC_TROUBLESHOOT,
        _cmd_role_propagating,
        transient=True,
    ),
    "arm-wrong-audience": Recipe(
        "The token was issued for the wrong audience",
        "The token's 'aud' is not Azure Resource Manager. ARM accepts only tokens for "
        "https://management.azure.com/ (or https://management.core.windows.net/); a managed identity can "
        "only ask for '<resource>/.default', one scope per request.",
        (
            "Request the ARM token with the scope https://management.azure.com/.default.",
            "Use exactly one scope per get_token call; use the matching resource ID for other services.",
        ),
        DOC_HOWTO_VM,
        _cmd_audience,
    ),
    "token-unknown-resource": Recipe(
        "Entra ID knows no application with this resource ID (AADSTS500011)",
        "The token request named a resource that no application in the tenant has as its ID: usually a "
        "typo (https://managements.azure.com), a delegated scope (User.Read, api://app/scope) where a "
        "managed identity can only ask for '<resource>/.default', or an app registered in another tenant. "
        "IMDS passes Entra ID's 400 invalid_resource on unchanged; retrying cannot help.",
        (
            "Compare the resource ID character by character with the documented one (mi.audiences()).",
            "Ask for '<resource ID>/.default' only: one scope per request, no delegated permissions.",
            "For your own API: use its Application ID URI or client ID, from the app's tenant.",
        ),
        DOC_CLAIMS,
        _cmd_unknown_resource,
    ),
    "arm-api-version-unsupported": Recipe(
        "ARM has no such api-version for this resource type",
        "Each resource type answers a fixed list of api-versions; ARM refuses any other one with 400 "
        "NoRegisteredProviderFound (the message lists the supported versions) or InvalidApiVersionParameter. "
        "A hand-written URL or an old SDK pinned to a retired version are the usual causes.",
        (
            "Pick an api-version from the list in the error message (the newest non-preview one).",
            "With an SDK, let the client choose: do not pass api_version unless you must.",
        ),
        DOC_NOT_FOUND,
        _cmd_api_version,
    ),
    "arm-token-expired": Recipe(
        "ARM says the token has expired",
        "ARM compared the token's expiry with its own clock and found it in the past: the token is old, or "
        "this machine's clock (which decided the token was still fresh) is wrong.",
        (
            "Check and resynchronise the machine's clock (NTP/chrony, w32tm).",
            "Do not keep tokens yourself; let the credential refresh them.",
        ),
        DOC_CLAIMS,
        _cmd_expired,
    ),
    "arm-invalid-token": Recipe(
        "ARM rejected the token as invalid",
        "ARM could not validate the bearer token (malformed, truncated, or not issued by Entra ID for this "
        "tenant).",
        ("Fetch a fresh token from the credential and send it unchanged.",),
        DOC_HOWTO_VM,
        _cmd_invalid_token,
    ),
    "arm-resource-not-found": Recipe(
        "The resource does not exist (404 ResourceNotFound)",
        "ARM found the subscription and resource group but no resource with that type and name.",
        ("Check the resource name, type and resource group (names are exact).",),
        DOC_NOT_FOUND,
        _cmd_resource_nf,
    ),
    "arm-resource-group-not-found": Recipe(
        "The resource group does not exist (404 ResourceGroupNotFound)",
        "ARM found the subscription but no resource group with that name.",
        ("Check the resource group name and that it is in this subscription.",),
        DOC_NOT_FOUND,
        _cmd_rg_nf,
    ),
    "arm-subscription-not-found": Recipe(
        "The subscription was not found (404 SubscriptionNotFound)",
        "The subscription ID is wrong, belongs to another tenant or cloud, or does not exist.",
        (
            "Check the subscription ID (instance metadata has the VM's own).",
            "Check the identity's tenant and cloud match the subscription's.",
        ),
        DOC_NOT_FOUND,
        _cmd_sub_nf,
    ),
    "arm-throttled": Recipe(
        "Azure Resource Manager is throttling (429)",
        "Too many ARM requests for this subscription and principal (token bucket: 250 reads, refilled 25/s).",
        (
            "Wait for Retry-After seconds, then retry (the SDK does this 3 times).",
            "Make fewer reads: cache results; reuse clients and credentials.",
        ),
        DOC_THROTTLING,
        _cmd_arm_throttled,
        transient=True,
    ),
    "tls-untrusted": Recipe(
        "The TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED)",
        "The HTTPS server's certificate does not chain to a CA this Python trusts: a TLS-inspecting proxy, "
        "or (for the local emulator) its CA bundle is not configured.",
        (
            "Point REQUESTS_CA_BUNDLE (or connection_verify=) at a bundle holding the right CA.",
            "Behind a TLS-inspecting proxy, add the proxy's CA to that bundle.",
        ),
        DOC_CLI_TROUBLESHOOT,
        _cmd_tls,
    ),
    "wrong-identity": Recipe(
        "The token belongs to a different identity than expected",
        "The token's oid (principal ID) is not the principal of the identity you meant: another "
        "user-assigned identity was selected (client_id), DefaultAzureCredential picked another credential "
        "(AZURE_CLIENT_ID, a developer sign-in), or an environment variable switched the backend.",
        (
            "Pass the intended identity explicitly: ManagedIdentityCredential(client_id=…).",
            "Decode the token (appid, oid, xms_mirid) to see who you are; compare with the VM's identity.",
        ),
        DOC_PY_IDENTITY,
        _cmd_wrong_identity,
    ),
    "unknown": Recipe(
        "Unrecognised failure",
        "This error does not match a known managed-identity failure mode. The evidence below shows what was "
        "returned.",
        (
            "Ask IMDS directly (command below) to see whether the identity works at all.",
            "Enable azure.identity INFO logging to see which credential was used.",
        ),
        DOC_HOWTO_VM,
        _cmd_unknown,
    ),
}


def recipe(diagnosis_id: str) -> Recipe:
    """Return the catalogue entry for `diagnosis_id` (``unknown`` when the id is not catalogued)."""
    return CATALOGUE.get(diagnosis_id, CATALOGUE["unknown"])
