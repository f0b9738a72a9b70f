"""The feature vector and labels (PRODUCT §4): one definition for training, batch and streaming."""
