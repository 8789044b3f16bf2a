"""Flowlink connectors: the SDK (`connectors.sdk`) and the built-in connectors, one subpackage each."""
