"""The feature vector and labels (docs/requirements.md §4): one definition for training, batch and streaming."""
