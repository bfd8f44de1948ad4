"""Provisioning services: take plain arguments, validate, change the model, raise domain errors.

They never import click or rich; every public function is meant to run inside one
`fsctl.db.transaction()` opened by its caller (the CLI opens one per command).
"""
