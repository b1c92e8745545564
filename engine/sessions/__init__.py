"""Sessions: a contact being resolved, step by step.

runtime.step (pure) applies an event to a session with one handler per node kind (steps*.py);
service.Sessions adds the store, the action executor and authority around it (ports declared
in service_ports.py, adapters in engine/adapters/). Imports definitions/, never insight/.
"""
