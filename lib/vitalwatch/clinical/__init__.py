"""Clinical definitions (PRODUCT §4): crisis events and NEWS2, each written once."""
