"""mi_helpers: sign in with an Azure VM managed identity, call ARM, and diagnose what goes wrong."""

__version__ = "0.1.0"
