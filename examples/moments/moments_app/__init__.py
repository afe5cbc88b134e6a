"""Federated mean and variance of numeric columns (an example app, not the bundled demo)."""
