"""The emulated Azure Resource Manager: one module per resource provider, one layer in front of them.

``layer``          :class:`ArmLayer`: path canonicalisation, api-version, token, faults, routing, headers
``call``           the request's caller and ARM's checks in order (subscription → RBAC → resource group)
``kinds``          a modelled resource type (:class:`~mi_helpers.emulator.arm.kinds.ResourceKind`), its routes
``resources``      Microsoft.Resources: subscriptions, resource groups, ``/resources``, unmodelled resources
``compute``        Microsoft.Compute/virtualMachines
``msi``            Microsoft.ManagedIdentity/userAssignedIdentities
``authorization``  Microsoft.Authorization role assignments and definitions
``metadata``       ``/metadata/endpoints`` (cloud metadata)
"""

from __future__ import annotations

from mi_helpers.emulator.arm.layer import ArmLayer, canonical_path

__all__ = ["ArmLayer", "canonical_path"]
