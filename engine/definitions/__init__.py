"""Definitions: what a library says, read, built and checked. Nothing here runs a session.

yamlsafe reads files (line and column kept), build turns YAML data into the frozen model,
checks/ and validate find every problem before anything runs, library holds journeys by id
and pins bundles by hash. Imports nothing of sessions/ or insight/.
"""
