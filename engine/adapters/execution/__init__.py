"""Running back-office actions: one executor base (base), in process (local_actions), as
Prefect task runs (prefect_actions, prefect_dispatch, prefect_server), on Prefect workers
(prefect_workers), through the long-lived action host (action_host, host_server); the
choice (executors) and the back office's state in a server (keeper)."""
