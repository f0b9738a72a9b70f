"""Clinical definitions (docs/requirements.md §4): crisis events and NEWS2, each written once."""
