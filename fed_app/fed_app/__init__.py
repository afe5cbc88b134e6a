"""fed_app: Flower app for federated descriptive statistics on the Pima diabetes data."""
