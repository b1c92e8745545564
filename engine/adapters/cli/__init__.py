"""The commands of ``journeys`` (``cli.py`` holds the group and registers them): one module
per concern, each command parsing its options, calling the engine and printing the result.

- ``common``: what every command shares: how an engine error is shown and exits
  (:class:`~engine.adapters.cli.common.Failure`), the shared options, reading what was typed;
- ``authoring``: validate, schema, graph, test (for the people who write journeys);
- ``sessions``: run, runs, db (driving sessions and their back-office runs);
- ``backoffice``: trigger, backoffice (proactive journeys and the demo back office);
- ``serving``: serve, worker, prefect (the processes that serve);
- ``insight``: report, simulate;
- ``views``: a session as the commands print it.

Engine modules are imported inside the commands, so that ``journeys --help`` or ``journeys
validate`` never load the database or Prefect.
"""
