"""Whole-dataset analysis: bounded, mergeable reducers and the data sources they read.

Importing this package does not import torch.
"""
